/** A cleaned, validated text example with its origin, so any later report can point back at the file. */
export interface TextExample {
  text: string;
  label: string;
  /** Value of the optional group (sensitive-feature) column, for fairness evaluation. */
  group?: string;
  file: string;
  line: number;
  /** True for rows produced by augmentation; they never reach validation or eval. */
  augmented?: boolean;
}

/** Which columns hold what. */
export interface ColumnSpec {
  textColumn: string;
  labelColumn: string;
  groupColumn?: string;
}
