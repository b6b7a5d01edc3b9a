/** The classifier folder format lives in the library (src/models/artifact.ts); the CLI uses that one implementation. */
export {
  assertFreshOut,
  loadArtifact,
  TAILOR_ARTIFACT,
  writeClassifier,
  writeFolderAtomic,
  type ArtifactInfo,
} from '../models/artifact.ts';
