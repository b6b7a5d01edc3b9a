/**
 * DistilBERT-style initialisation for teachers that are plain ONNX graphs (the classifier folders `tailor customize`
 * writes carry no BERT config): the teacher's shape is read from its recovered parameter table, and a zoo BERT
 * student of the same width takes the teacher's embeddings and alternate encoder layers by module path.
 */
import { cloneGraph } from '../../onnx/ir.ts';
import { tensorFromArray, tensorToArray, transpose2d } from '../../onnx/tensor.ts';
import type { Model, Parameter } from '../../models/model.ts';

/** What a BERT-like teacher looks like, read off its parameters (undefined when it is not BERT-like). */
export interface TeacherShape {
  hidden: number;
  layers: number;
  vocab: number;
  maxPositions: number;
  intermediate?: number;
}

/** Module path without a leading model prefix (`bert.`), so zoo and exported names compare equal. */
function key(path: string): string {
  return path.replace(/^bert\./, '');
}

/** The teacher's width, depth and table sizes when its parameters follow BERT's module names. */
export function teacherShape(teacher: Model): TeacherShape | undefined {
  const byKey = new Map([...teacher.params.values()].map((p) => [key(p.path), p]));
  const words = byKey.get('embeddings.word_embeddings.weight');
  const pos = byKey.get('embeddings.position_embeddings.weight');
  if (!words || words.shape.length !== 2) return undefined;
  const hidden = words.shape[1];
  let layers = 0;
  for (const k of byKey.keys()) {
    const m = /^encoder\.layer\.(\d+)\./.exec(k);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (layers === 0) return undefined;
  const inter = byKey.get('encoder.layer.0.intermediate.dense.weight');
  const intermediate = inter?.shape.find((d) => d !== hidden) ?? inter?.shape[0];
  return {
    hidden,
    layers,
    vocab: words.shape[0],
    maxPositions: pos?.shape[0] ?? 512,
    ...(intermediate !== undefined ? { intermediate } : {}),
  };
}

/**
 * Copies the teacher's embeddings and encoder layers `layerMap[i]` into student layer i, matching parameters by
 * module path (a leading `bert.` ignored) and shape; a linear weight stored in the other layout is transposed.
 * Pooler and classifier stay fresh (the student's pooling may differ from the teacher's). Pure: returns a new model
 * and the student paths that were copied.
 */
export function inheritTeacherWeights(
  student: Model,
  teacher: Model,
  layerMap: readonly number[],
): { model: Model; copied: string[] } {
  const tByKey = new Map<string, Parameter>([...teacher.params.values()].map((p) => [key(p.path), p]));
  const graph = cloneGraph(student.graph);
  const copied: string[] = [];
  for (const p of student.params.values()) {
    let k = key(p.path);
    if (!k.startsWith('embeddings.') && !k.startsWith('encoder.layer.')) continue;
    const m = /^encoder\.layer\.(\d+)\./.exec(k);
    if (m) {
      const src = layerMap[Number(m[1])];
      if (src === undefined) continue;
      k = k.replace(/^encoder\.layer\.\d+\./, `encoder.layer.${src}.`);
    }
    const t = tByKey.get(k);
    const tensor = t ? teacher.graph.initializers.get(t.initializer) : undefined;
    if (!t || !tensor || t.dtype !== p.dtype) continue;
    let values = tensorToArray(tensor) as Float32Array;
    const same = t.shape.length === p.shape.length && t.shape.every((d, i) => d === p.shape[i]);
    if (!same) {
      const flipped =
        t.shape.length === 2 &&
        p.shape.length === 2 &&
        t.shape[0] === p.shape[1] &&
        t.shape[1] === p.shape[0] &&
        t.layout !== p.layout;
      if (!flipped) continue;
      values = transpose2d(values, t.shape[0], t.shape[1]);
    } else if (t.shape.length === 2 && t.layout !== p.layout && t.layout !== 'same' && p.layout !== 'same') {
      // A square linear weight in the other layout: same shape, transposed meaning.
      values = transpose2d(values, t.shape[0], t.shape[1]);
    }
    graph.initializers.set(p.initializer, tensorFromArray(p.initializer, p.dtype, values, p.shape));
    copied.push(p.path);
  }
  return { model: { ...student, graph }, copied };
}
