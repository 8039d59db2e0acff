import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AlertRuleInput,
  formatAlertRuleId,
  isAlertRuleId,
  SPIKE_DEFAULTS,
  validateAlertRule,
} from './alert-rules.ts';

const base = {
  name: 'post milestones',
  eventType: 'view',
  recipients: { dashboard: true },
} satisfies Partial<AlertRuleInput>;

const milestone = (thresholds: number[], subject = { kind: 'target_prefix' as const, value: 'post/' }) =>
  ({ ...base, condition: { kind: 'milestone', subject, thresholds } }) satisfies AlertRuleInput;

/** The fields at fault for `input`, in order. */
function faults(input: AlertRuleInput): string[] {
  const result = validateAlertRule(input);
  assert.equal(result.ok, false, 'expected the rule to be refused');
  return result.ok ? [] : result.violations.map((v) => v.field);
}

function valid(input: AlertRuleInput) {
  const result = validateAlertRule(input);
  assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.violations));
  return result.spec;
}

test('a milestone rule: ascending, distinct, positive whole thresholds, at most 32', () => {
  const spec = valid(milestone([100, 1_000, 10_000]));
  assert.deepEqual(spec, {
    name: 'post milestones',
    enabled: true,
    eventType: 'view',
    recipients: { userIds: [], groups: [], targetOwner: false, dashboard: true },
    condition: {
      kind: 'milestone',
      subject: { kind: 'target_prefix', value: 'post/' },
      thresholds: [100, 1_000, 10_000],
    },
  });
  assert.deepEqual(faults(milestone([100, 10, 1_000, 1_000])), [
    'milestone.thresholds[1]',
    'milestone.thresholds[3]',
  ]);
  assert.deepEqual(faults(milestone([0])), ['milestone.thresholds[0]']);
  assert.deepEqual(faults(milestone([1.5])), ['milestone.thresholds[0]']);
  assert.deepEqual(faults(milestone([2 ** 53])), ['milestone.thresholds[0]']);
  assert.deepEqual(faults(milestone([])), ['milestone.thresholds']);
  valid(milestone(Array.from({ length: 32 }, (_, i) => i + 1)));
  assert.deepEqual(faults(milestone(Array.from({ length: 33 }, (_, i) => i + 1))), ['milestone.thresholds']);
  assert.deepEqual(faults(milestone([1], { kind: 'user_id', value: 'u1' } as never)), [
    'milestone.subject.user_id',
  ]);
});

test('the common fields are checked by name: name, event type, recipients', () => {
  const ok = milestone([10]);
  assert.deepEqual(faults({ ...ok, name: '  ' }), ['name']);
  assert.deepEqual(faults({ ...ok, name: 'x'.repeat(201) }), ['name']);
  assert.deepEqual(faults({ ...ok, name: 'two\nlines' }), ['name']);
  assert.equal(valid({ ...ok, name: '  padded  ' }).name, 'padded');
  assert.deepEqual(faults({ ...ok, eventType: '' }), ['event_type']);
  assert.deepEqual(faults({ ...ok, eventType: '1view' }), ['event_type']);
  assert.deepEqual(faults({ ...ok, recipients: {} }), ['recipients']);
  assert.deepEqual(faults({ ...ok, recipients: { userIds: ['a', '', 'a'] } }), [
    'recipients.user_ids[1]',
    'recipients.user_ids[2]',
  ]);
  assert.deepEqual(faults({ ...ok, recipients: { groups: ['ops', 'bad group'] } }), ['recipients.groups[1]']);
  assert.deepEqual(faults({ ...ok, recipients: { groups: Array.from({ length: 21 }, (_, i) => `g${i}`) } }), [
    'recipients.groups',
  ]);
  assert.equal(valid({ ...ok, enabled: false }).enabled, false);
  assert.deepEqual(faults({ ...base }), ['condition']);
  // Several faults at once are all reported.
  assert.deepEqual(faults({ ...ok, name: '', eventType: '', recipients: {} }), [
    'name',
    'event_type',
    'recipients',
  ]);
});

test('a threshold rule: count or sum over 1 to 1440 minutes, threshold and re-arm minutes', () => {
  const window = (
    change: Record<string, unknown> = {},
    subject = { kind: 'target' as const, value: 'shop/a' },
  ) =>
    ({
      ...base,
      condition: { kind: 'threshold', subject, measure: '', windowMinutes: 10, threshold: 50, ...change },
    }) as AlertRuleInput;
  assert.deepEqual(valid(window()).condition, {
    kind: 'threshold',
    subject: { kind: 'target', value: 'shop/a' },
    measure: 'count',
    windowMinutes: 10,
    threshold: 50,
    rearmMinutes: 10,
  });
  assert.equal(valid(window({ measure: 'sum', threshold: 12.5 })).condition.kind, 'threshold');
  valid(window({ windowMinutes: 1 }));
  valid(window({ windowMinutes: 1440, rearmMinutes: 0 }));
  assert.equal(
    (valid(window({ rearmMinutes: 10_080 })).condition as { rearmMinutes: number }).rearmMinutes,
    10_080,
  );
  valid(window({}, { kind: 'user_id', value: 'user-1' } as never));
  for (const [change, field] of [
    [{ measure: 'avg' }, 'threshold.measure'],
    [{ windowMinutes: 0 }, 'threshold.window_minutes'],
    [{ windowMinutes: 1441 }, 'threshold.window_minutes'],
    [{ threshold: 12.5 }, 'threshold.threshold'],
    [{ threshold: 0 }, 'threshold.threshold'],
    [{ measure: 'sum', threshold: Number.NaN }, 'threshold.threshold'],
    [{ rearmMinutes: -1 }, 'threshold.rearm_minutes'],
    [{ rearmMinutes: 1.5 }, 'threshold.rearm_minutes'],
    [{ rearmMinutes: 10_081 }, 'threshold.rearm_minutes'],
  ] as const)
    assert.deepEqual(faults(window(change)), [field], JSON.stringify(change));
  assert.deepEqual(faults(window({ subject: undefined })), ['threshold.subject']);
  assert.deepEqual(faults(window({}, { kind: 'target_prefix', value: '' } as never)), [
    'threshold.subject.target_prefix',
  ]);
  assert.deepEqual(
    faults({ ...window({}, { kind: 'user_id', value: 'u' } as never), recipients: { targetOwner: true } }),
    ['recipients.target_owner'],
  );
});

test('a spike rule: defaults filled, each parameter checked, z_clear below the threshold', () => {
  const spike = (change: Record<string, unknown> = {}) =>
    ({
      ...base,
      condition: { kind: 'spike', subject: { kind: 'target', value: 'shop/a' }, ...change },
    }) as AlertRuleInput;
  assert.deepEqual(valid(spike()).condition, {
    kind: 'spike',
    subject: { kind: 'target', value: 'shop/a' },
    halfLifeMinutes: SPIKE_DEFAULTS.halfLifeMinutes,
    zThreshold: SPIKE_DEFAULTS.zThreshold,
    zClear: 2,
    minCount: SPIKE_DEFAULTS.minCount,
    minRatio: SPIKE_DEFAULTS.minRatio,
    warmupMinutes: SPIKE_DEFAULTS.halfLifeMinutes,
  });
  const custom = valid(spike({ zThreshold: 6, halfLifeMinutes: 1440, minCount: 1, minRatio: 1 }));
  assert.deepEqual(
    custom.condition.kind === 'spike' && [custom.condition.zClear, custom.condition.warmupMinutes],
    [3, 1440],
    'z_clear defaults to half the threshold, the warm-up to one half-life',
  );
  valid(spike({ warmupMinutes: 0 }));
  for (const [change, field] of [
    [{ halfLifeMinutes: 0 }, 'spike.half_life_minutes'],
    [{ halfLifeMinutes: 10_081 }, 'spike.half_life_minutes'],
    [{ zThreshold: 0 }, 'spike.z_threshold'],
    [{ zThreshold: 101 }, 'spike.z_threshold'],
    [{ zClear: 4 }, 'spike.z_clear'],
    [{ zClear: -1 }, 'spike.z_clear'],
    [{ minCount: 0 }, 'spike.min_count'],
    [{ warmupMinutes: -1 }, 'spike.warmup_minutes'],
    [{ warmupMinutes: 10_081 }, 'spike.warmup_minutes'],
    [{ minRatio: 0.5 }, 'spike.min_ratio'],
    [{ subject: { kind: 'user_id', value: 'u' } }, 'spike.subject.user_id'],
  ] as const)
    assert.deepEqual(faults(spike(change)), [field], JSON.stringify(change));
});

test('rule ids: ar_ and 10 base62 characters from 8 random bytes', () => {
  const id = formatAlertRuleId(new Uint8Array(8).fill(255));
  assert.match(id, /^ar_[0-9A-Za-z]{10}$/);
  assert.ok(isAlertRuleId(id));
  assert.equal(formatAlertRuleId(new Uint8Array(8)), 'ar_0000000000');
  assert.notEqual(formatAlertRuleId(new Uint8Array(8).fill(1)), formatAlertRuleId(new Uint8Array(8).fill(2)));
  assert.throws(() => formatAlertRuleId(new Uint8Array(7)), RangeError);
  for (const text of ['ar_123', 'xx_0000000000', 'ar_000000000!', ''])
    assert.equal(isAlertRuleId(text), false, text);
});
