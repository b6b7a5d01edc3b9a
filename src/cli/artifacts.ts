/** The classifier folder format lives in the library (src/customize/artifact.ts); the CLI uses that one implementation. */
export {
  assertFreshOut,
  loadArtifact,
  saveCustomizedModel,
  TAILOR_ARTIFACT,
  writeClassifier,
  writeFolderAtomic,
  type ArtifactInfo,
  type SaveModelOptions,
} from '../customize/artifact.ts';
