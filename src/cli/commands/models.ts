/** `tailor models list | show | alias | rollback | export`. */
import { Command } from 'commander';
import { ConfigError } from '../../errors.ts';
import { emit, withGlobals, type GlobalOptions } from '../common.ts';

/** The registry and its formatters, loaded only when a subcommand runs (better-sqlite3 is a native module). */
async function lib(): Promise<typeof import('../../registry/index.ts') & typeof import('../../workflow/sources.ts')> {
  const [a, b] = await Promise.all([import('../../registry/index.ts'), import('../../workflow/sources.ts')]);
  return { ...a, ...b };
}

export function modelsCommand(): Command {
  const models = new Command('models').description('registered models: list, show, alias, rollback, export');

  const list = new Command('list').description('every model name with its latest version and aliases');
  withGlobals(list).action(async (o: GlobalOptions) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, (reg) => reg.listModels());
    emit(o, r, () => L.formatModelList(r));
  });

  const show = new Command('show')
    .description('one model version (name = latest, name:3, name@alias), or all versions with --all')
    .argument('<ref>', 'model reference')
    .option('--all', 'every version of the model');
  withGlobals(show).action(async (ref: string, o: GlobalOptions & { all?: boolean }) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, async (reg) =>
      o.all ? reg.listModelVersions(L.parseModelRef(ref).name) : reg.getModel(ref),
    );
    emit(o, r, () => (Array.isArray(r) ? r.map(L.formatModelVersion).join('\n\n') : L.formatModelVersion(r)));
  });

  const alias = new Command('alias')
    .description(
      'point ALIAS (production, staging, any name) of model NAME at VERSION (a number or another reference); --delete removes it',
    )
    .argument('<name>', 'model name')
    .argument('<alias>', 'alias name')
    .argument('[version]', 'version number, or a reference such as name@staging')
    .option('--delete', 'remove the alias');
  withGlobals(alias).action(
    async (name: string, al: string, version: string | undefined, o: GlobalOptions & { delete?: boolean }) => {
      const L = await lib();
      const r = await L.withRegistry(o.home, async (reg) => {
        if (o.delete) {
          await reg.deleteAlias(name, al);
          return { name, alias: al, deleted: true };
        }
        if (version === undefined) {
          throw new ConfigError(`models alias ${name} ${al}: give the version to point the alias at, or --delete`, {
            field: 'version',
          });
        }
        const v = /^\d+$/.test(version) ? Number(version) : version;
        return reg.setAlias(name, al, v);
      });
      emit(o, r, () => ('deleted' in r ? `deleted alias ${name}@${al}` : `${name}@${al} -> ${name}:${r.version}`));
    },
  );

  const rollback = new Command('rollback')
    .description('move an alias of model NAME back to the version it pointed at before (default alias: production)')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias to roll back', 'production');
  withGlobals(rollback).action(async (name: string, o: GlobalOptions & { alias: string }) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, (reg) => reg.rollbackAlias(name, o.alias));
    emit(o, r, () => `${name}@${r.alias} -> ${name}:${r.to} (was ${name}:${r.from})`);
  });

  const exp = new Command('export')
    .description("copy a model version's folder out of the registry")
    .argument('<ref>', 'model reference')
    .argument('<dir>', 'destination folder (must not exist)');
  withGlobals(exp).action(async (ref: string, dir: string, o: GlobalOptions) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, (reg) => reg.exportModel(ref, dir));
    emit(o, { ...r, exportedTo: dir }, () => `exported ${r.name}:${r.version} to ${dir}`);
  });

  return models.addCommand(list).addCommand(show).addCommand(alias).addCommand(rollback).addCommand(exp);
}
