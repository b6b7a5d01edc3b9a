/**
 * A/B and shadow routing. A route file maps a public name to weighted variants:
 *
 *   { "routes": { "tickets": { "variants": [
 *       { "name": "production", "model": "tickets@production", "weight": 90 },
 *       { "name": "candidate",  "model": "tickets@candidate",  "weight": 10 },
 *       { "name": "next",       "model": "tickets:4", "shadow": true } ] } } }
 *
 * A request picks one non-shadow variant by weight: at random, or, when it carries a key (`x-tailor-key`), by a hash
 * of the key, so the same key always gets the same variant while the weights stay put. Shadow variants get a copy of
 * every request; their answers are logged and never returned.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, parseModelRef } from './library.ts';

/** One variant of a route. */
export interface Variant {
  /** Reported in every response and in the logs (`production`, `candidate`). */
  name: string;
  /** Model reference it serves (`tickets@production`, `tickets:4`). */
  model: string;
  /** Relative share of traffic (non-shadow variants). */
  weight: number;
  shadow: boolean;
}

/** A public name and its variants. */
export interface Route {
  name: string;
  variants: Variant[];
}

const VariantSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64'),
  model: z.string().min(1),
  weight: z.number().nonnegative().finite().optional(),
  shadow: z.boolean().optional(),
});
const RoutesSchema = z.strictObject({
  routes: z.record(z.string(), z.strictObject({ variants: z.array(VariantSchema).min(1) })),
});

/** Parses and checks a route file's JSON text; errors name the file and the field. */
export function parseRoutes(text: string, file = 'routes'): Route[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`, { file }, { cause: e });
  }
  const r = RoutesSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.join('.');
    throw new ConfigError(`${file}: field '${field}': ${i.message}`, { file, field });
  }
  const routes: Route[] = [];
  for (const [name, cfg] of Object.entries(r.data.routes)) {
    const field = `routes.${name}`;
    try {
      parseModelRef(name);
    } catch (e) {
      throw new ConfigError(`${file}: route name '${name}' is not a valid model name`, { file, field }, { cause: e });
    }
    const seen = new Set<string>();
    const variants: Variant[] = cfg.variants.map((v, i) => {
      try {
        parseModelRef(v.model);
      } catch (e) {
        throw new ConfigError(`${file}: ${field}.variants.${i}.model: ${(e as Error).message}`, {
          file,
          field: `${field}.variants.${i}.model`,
          value: v.model,
        });
      }
      if (seen.has(v.name))
        throw new ConfigError(`${file}: ${field}: variant name '${v.name}' appears twice`, {
          file,
          field,
          value: v.name,
        });
      seen.add(v.name);
      return { name: v.name, model: v.model, weight: v.weight ?? (v.shadow ? 0 : 1), shadow: v.shadow === true };
    });
    if (!variants.some((v) => !v.shadow && v.weight > 0))
      throw new ConfigError(`${file}: ${field}: needs at least one non-shadow variant with a weight above 0`, {
        file,
        field,
      });
    routes.push({ name, variants });
  }
  return routes;
}

/** Reads and parses a route file. */
export function readRoutes(file: string): Route[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read route file ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseRoutes(text, file);
}

/** A number in [0, 1) from a request key, the same for the same key and route. */
export function stickyPoint(route: string, key: string): number {
  const h = createHash('sha256').update(route).update('\0').update(key).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/** The non-shadow variant answering a request: by `key`'s hash when given, else at random. */
export function pickVariant(route: Route, key: string | undefined, random: () => number = Math.random): Variant {
  const live = route.variants.filter((v) => !v.shadow && v.weight > 0);
  const total = live.reduce((s, v) => s + v.weight, 0);
  let x = (key !== undefined ? stickyPoint(route.name, key) : random()) * total;
  for (const v of live) {
    if (x < v.weight) return v;
    x -= v.weight;
  }
  return live[live.length - 1];
}
