/**
 * Which storage backends a registry uses, chosen by URL so that switching to shared infrastructure is
 * configuration, not code:
 *
 *   metadata   TAILOR_REGISTRY   postgres://user:pass@host:5432/db[?schema=name]   or sqlite:PATH / a file path
 *   artifacts  TAILOR_ARTIFACTS  s3://bucket[/prefix] (+ TAILOR_S3_ENDPOINT, AWS_* credentials)   or a folder
 *
 * Unset means today's embedded default: SQLite at `<home>/registry.db` and objects under `<home>`. The network
 * backends are imported lazily, so a local registry never loads `pg` or the AWS SDK. A backend that cannot be
 * reached is an error naming its URL (credentials masked); there is no silent fallback to the local default.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import { LocalArtifactStore } from './local-artifacts.ts';
import type { PgStoreOptions } from './pg-store.ts';
import type { S3StoreOptions } from './s3-artifacts.ts';
import { SqliteMetadataStore } from './sqlite-store.ts';
import type { ArtifactStore, MetadataStore } from './store.ts';
import { maskUrl } from './util.ts';

/** Environment variable naming the metadata store (`postgres://...`). */
export const TAILOR_REGISTRY_ENV = 'TAILOR_REGISTRY';
/** Environment variable naming the artifact store (`s3://bucket/prefix`). */
export const TAILOR_ARTIFACTS_ENV = 'TAILOR_ARTIFACTS';
/** Environment variable with the endpoint of an S3-compatible server (`http://minio:9000`). */
export const TAILOR_S3_ENDPOINT_ENV = 'TAILOR_S3_ENDPOINT';

/** Backend selection; every field falls back to its environment variable, then to the local default. */
export interface BackendOptions {
  /** `postgres://...`, `sqlite:PATH` or a file path; default `$TAILOR_REGISTRY`, else `<home>/registry.db`. */
  registryUrl?: string;
  /** `s3://bucket/prefix`, `file:PATH` or a folder; default `$TAILOR_ARTIFACTS`, else `<home>`. */
  artifactsUrl?: string;
  /** Endpoint of an S3-compatible server; default `$TAILOR_S3_ENDPOINT`, else AWS. */
  s3Endpoint?: string;
  /** Further S3 settings (part size, credentials, retries). */
  s3?: Partial<Omit<S3StoreOptions, 'url' | 'endpoint' | 'localRoot'>>;
  /** PostgreSQL pool settings. */
  pg?: PgStoreOptions;
  /** SQLite busy timeout in ms (default 15000). */
  busyTimeoutMs?: number;
}

/** The URLs in effect after applying options, environment and defaults. */
export interface ResolvedBackends {
  registryUrl: string | undefined;
  artifactsUrl: string | undefined;
  s3Endpoint: string | undefined;
  /** Whether the metadata store is a network database (then the registry is named by its URL, not its folder). */
  remoteMetadata: boolean;
}

const env = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
};

/** Applies options, then environment variables. */
export function resolveBackends(options: BackendOptions = {}): ResolvedBackends {
  const registryUrl = options.registryUrl ?? env(TAILOR_REGISTRY_ENV);
  const artifactsUrl = options.artifactsUrl ?? env(TAILOR_ARTIFACTS_ENV);
  const s3Endpoint = options.s3Endpoint ?? env(TAILOR_S3_ENDPOINT_ENV);
  return {
    registryUrl,
    artifactsUrl,
    s3Endpoint,
    remoteMetadata: registryUrl !== undefined && /^postgres(?:ql)?:\/\//i.test(registryUrl),
  };
}

function schemeOf(url: string): string | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  // A Windows drive letter (C:\...) is a path, not a scheme.
  return m && m[1].length > 1 ? m[1].toLowerCase() : undefined;
}

function localPath(url: string, scheme: string | undefined): string {
  const p = scheme === undefined ? url : url.slice(scheme.length + 1).replace(/^\/\/(?=\/)/, '');
  return isAbsolute(p) ? p : resolve(p);
}

/** Opens the metadata store named by `url` (undefined: SQLite in `home`). */
export async function openMetadataStore(
  url: string | undefined,
  home: string,
  options: BackendOptions = {},
): Promise<MetadataStore> {
  if (url === undefined)
    return SqliteMetadataStore.open(join(home, 'registry.db'), { busyTimeoutMs: options.busyTimeoutMs });
  const scheme = schemeOf(url);
  if (scheme === 'postgres' || scheme === 'postgresql') {
    const { PgMetadataStore } = await import('./pg-store.ts');
    return PgMetadataStore.open(url, options.pg);
  }
  if (scheme === undefined || scheme === 'sqlite' || scheme === 'file') {
    return SqliteMetadataStore.open(localPath(url, scheme), { busyTimeoutMs: options.busyTimeoutMs });
  }
  throw new ConfigError(
    `unsupported registry URL '${maskUrl(url)}' (${TAILOR_REGISTRY_ENV}): use postgres://..., sqlite:PATH or a file path`,
    { field: TAILOR_REGISTRY_ENV, value: maskUrl(url) },
  );
}

/** Opens the artifact store named by `url` (undefined: objects in `home`); `home` also holds S3 staging and cache. */
export async function openArtifactStore(
  url: string | undefined,
  home: string,
  options: BackendOptions = {},
): Promise<ArtifactStore> {
  const scheme = url === undefined ? undefined : schemeOf(url);
  if (url !== undefined && scheme === 's3') {
    const { S3ArtifactStore } = await import('./s3-artifacts.ts');
    const endpoint = options.s3Endpoint ?? env(TAILOR_S3_ENDPOINT_ENV);
    return S3ArtifactStore.open({
      ...options.s3,
      url,
      ...(endpoint !== undefined ? { endpoint } : {}),
      localRoot: home,
    });
  }
  if (url !== undefined && scheme !== undefined && scheme !== 'file') {
    throw new ConfigError(
      `unsupported artifact store URL '${maskUrl(url)}' (${TAILOR_ARTIFACTS_ENV}): use s3://bucket/prefix, file:PATH or a folder`,
      { field: TAILOR_ARTIFACTS_ENV, value: maskUrl(url) },
    );
  }
  const store = new LocalArtifactStore(url === undefined ? home : localPath(url, scheme));
  await store.init();
  return store;
}
