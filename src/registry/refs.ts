/** Parsing and validation of model references (`name`, `name:3`, `name@production`) and names. */
import { ConfigError } from '../errors.ts';

/** A parsed model reference: latest version, an explicit version, or an alias. */
export type ModelRef =
  { name: string; version: number } | { name: string; alias: string } | { name: string; latest: true };

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/]*$/;
const ALIAS_RE = /^[A-Za-z][A-Za-z0-9._-]*$/;

/** Throws ConfigError unless `name` is a valid model name (letters, digits, `.`, `_`, `-`, `/`). */
export function checkModelName(name: string): void {
  if (!NAME_RE.test(name) || name.length > 200) {
    throw new ConfigError(
      `invalid model name '${name}': use letters, digits, '.', '_', '-' or '/', starting with a letter or digit`,
      {
        value: name,
      },
    );
  }
}

/** Throws ConfigError unless `alias` is a valid alias; `latest` is reserved because it always means the newest. */
export function checkAlias(alias: string): void {
  if (!ALIAS_RE.test(alias) || alias.length > 100) {
    throw new ConfigError(`invalid alias '${alias}': use letters, digits, '.', '_' or '-', starting with a letter`, {
      value: alias,
    });
  }
  if (alias === 'latest')
    throw new ConfigError(`alias 'latest' is reserved: it always resolves to the newest version`, { value: alias });
}

/** Parses `name`, `name:3`, `name@alias` or `name@latest`. */
export function parseModelRef(ref: string): ModelRef {
  const at = ref.lastIndexOf('@');
  if (at > 0) {
    const name = ref.slice(0, at);
    const alias = ref.slice(at + 1);
    checkModelName(name);
    if (alias === 'latest') return { name, latest: true };
    checkAlias(alias);
    return { name, alias };
  }
  const colon = ref.lastIndexOf(':');
  if (colon > 0) {
    const name = ref.slice(0, colon);
    const v = ref.slice(colon + 1);
    checkModelName(name);
    if (!/^[1-9][0-9]*$/.test(v))
      throw new ConfigError(`invalid model version '${v}' in '${ref}': expected a positive integer`, { value: ref });
    return { name, version: Number(v) };
  }
  checkModelName(ref);
  return { name: ref, latest: true };
}

/** Canonical text of a reference. */
export function formatModelRef(ref: ModelRef): string {
  if ('version' in ref) return `${ref.name}:${ref.version}`;
  if ('alias' in ref) return `${ref.name}@${ref.alias}`;
  return `${ref.name}@latest`;
}
