import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseDuration } from '../../src/util/duration.ts';
import { ConfigError } from '../../src/errors.ts';

test('parseDuration: seconds, minutes, hours, bare seconds', () => {
  assert.equal(parseDuration('90s'), 90);
  assert.equal(parseDuration('10m'), 600);
  assert.equal(parseDuration('1h'), 3600);
  assert.equal(parseDuration('1.5h'), 5400);
  assert.equal(parseDuration(' 45 '), 45);
  assert.equal(parseDuration('2M'), 120);
});

test('parseDuration: anything else is a ConfigError naming the field and the text', () => {
  for (const bad of ['', 'abc', '0', '0m', '-1m', '10x', '1e3', 'm', '5 minutes']) {
    assert.throws(
      () => parseDuration(bad, 'budget'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.context.field === 'budget' &&
        e.context.value === bad &&
        e.message === `budget must be a positive duration such as 90s, 10m or 1h, got '${bad}'`,
      bad,
    );
  }
});

test('formatDuration: the shortest exact unit', () => {
  assert.equal(formatDuration(90), '90s');
  assert.equal(formatDuration(600), '10m');
  assert.equal(formatDuration(5400), '1.5h');
  assert.equal(formatDuration(3600), '1h');
});
