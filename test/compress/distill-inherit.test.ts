/** DistilBERT-style init for plain ONNX teachers: shape read from recovered params, alternate layers copied by module path. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverParams } from '../../src/models/hf/names.ts';
import { paramValues, type Model } from '../../src/models/model.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { inheritTeacherWeights, teacherShape } from '../../src/compress/distill/index.ts';

test('teacherShape and inheritTeacherWeights: student layer i holds teacher layer map[i]; pooler and head stay fresh', () => {
  const zoo = buildBert(
    bertConfig({
      vocab_size: 50,
      hidden_size: 16,
      num_hidden_layers: 4,
      num_attention_heads: 2,
      intermediate_size: 24,
      max_position_embeddings: 20,
      num_labels: 3,
    }),
    { task: 'sequence-classification', seed: 1 },
  );
  // What loadArtifact gives for a folder without config.json: architecture 'onnx', params recovered from the graph.
  const teacher: Model = { ...zoo, architecture: 'onnx', config: {}, params: recoverParams(zoo.graph) };
  assert.deepEqual(teacherShape(teacher), { hidden: 16, layers: 4, vocab: 50, maxPositions: 20, intermediate: 24 });
  const student = buildBert(
    bertConfig({
      vocab_size: 50,
      hidden_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      intermediate_size: 24,
      max_position_embeddings: 20,
      num_labels: 3,
    }),
    { task: 'sequence-classification', seed: 9 },
  );
  const { model, copied } = inheritTeacherWeights(student, teacher, [0, 2]);
  const eq = (a: string, b: string): void =>
    assert.deepEqual(
      Array.from(paramValues(model, a) as Float32Array),
      Array.from(paramValues(teacher, b) as Float32Array),
      `${a} <- ${b}`,
    );
  eq('bert.embeddings.word_embeddings.weight', 'bert.embeddings.word_embeddings.weight');
  eq('bert.encoder.layer.0.attention.self.query.weight', 'bert.encoder.layer.0.attention.self.query.weight');
  eq('bert.encoder.layer.1.intermediate.dense.weight', 'bert.encoder.layer.2.intermediate.dense.weight');
  eq('bert.encoder.layer.1.output.LayerNorm.bias', 'bert.encoder.layer.2.output.LayerNorm.bias');
  // 5 embedding tensors + 16 per layer.
  assert.equal(copied.length, 5 + 2 * 16);
  assert.ok(!copied.some((p) => p.startsWith('classifier') || p.includes('pooler')));
  assert.deepEqual(
    Array.from(paramValues(model, 'classifier.weight') as Float32Array),
    Array.from(paramValues(student, 'classifier.weight') as Float32Array),
  );
  // The input student is untouched.
  assert.notDeepEqual(
    Array.from(paramValues(student, 'bert.encoder.layer.1.intermediate.dense.weight') as Float32Array),
    Array.from(paramValues(model, 'bert.encoder.layer.1.intermediate.dense.weight') as Float32Array),
  );
});
