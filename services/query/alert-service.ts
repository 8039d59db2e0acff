/**
 * tally.v1.AlertService, served by the query role (the gRPC role that holds the SQL port): alert
 * rule administration, every method scope admin (checked by access control from the proto's
 * `required_scope`). Validation is the domain's (domain/alert-rules.ts), run by the rule store;
 * its field paths are relative to the rule, and the answers name them from the request
 * (`rule.milestone.thresholds[2]`).
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { AlertRuleInput, AlertSubject } from '../domain/alert-rules.ts';
import {
  type AlertRule as AlertRuleMessage,
  type AlertRuleSchema,
  AlertService,
  type AlertSubject as AlertSubjectMessage,
  type AlertSubjectSchema,
} from '../gen/tally/v1/alerts_pb.js';
import type { AlertRule, RuleStore } from '../infra/alerts/rule-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { Logger } from '../infra/logger.ts';

export interface AlertServiceDeps {
  rules: RuleStore;
  grpc: GrpcRegistry;
  logger: Logger;
}

export function registerAlertService(deps: AlertServiceDeps): void {
  const logger = deps.logger.child({ component: 'alerts' });
  /** The store's errors with their field paths as the request names them. */
  const inRequest = async <T>(prefix: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      if (error instanceof AppError && error.fieldViolations.length > 0 && error.field !== 'id')
        throw error.renameFields((field) => (field === 'expected_revision' ? field : `${prefix}${field}`), {
          reason: error.reason,
        });
      throw error;
    }
  };
  const requireId = (id: string) => {
    if (id === '') throw AppError.invalidField('id', 'is required');
  };

  deps.grpc.register(AlertService, {
    async createAlertRule(request, context) {
      const input = ruleInput(request.rule);
      const rule = await inRequest('rule.', () => deps.rules.create(input));
      logger.info('alert rule created', { id: rule.id, by: context.principal?.id });
      return { rule: toMessage(rule) };
    },

    async listAlertRules() {
      return { rules: (await deps.rules.list()).map(toMessage) };
    },

    async getAlertRule(request) {
      requireId(request.id);
      const rule = await deps.rules.get(request.id);
      if (!rule) throw notFound(request.id);
      return { rule: toMessage(rule) };
    },

    async updateAlertRule(request, context) {
      requireId(request.id);
      const input = ruleInput(request.rule);
      let expected: number | undefined;
      if (request.expectedRevision !== undefined) {
        expected = Number(request.expectedRevision);
        if (!Number.isSafeInteger(expected))
          throw AppError.invalidField('expected_revision', 'is not a revision this server made');
      }
      const rule = await inRequest('rule.', () => deps.rules.update(request.id, input, expected));
      logger.info('alert rule updated', { id: rule.id, revision: rule.revision, by: context.principal?.id });
      return { rule: toMessage(rule) };
    },

    async deleteAlertRule(request, context) {
      requireId(request.id);
      const rule = await deps.rules.delete(request.id);
      logger.info('alert rule deleted', { id: rule.id, by: context.principal?.id });
      return { rule: toMessage(rule) };
    },
  });
}

function notFound(id: string): AppError {
  return new AppError(Code.NOT_FOUND, `no alert rule with id ${JSON.stringify(id)}`, {
    fieldViolations: [{ field: 'id', description: 'no such rule' }],
  });
}

const SUBJECT_KIND = { target: 'target', targetPrefix: 'target_prefix', userId: 'user_id' } as const;
const SUBJECT_CASE = { target: 'target', target_prefix: 'targetPrefix', user_id: 'userId' } as const;

function subjectOf(message: AlertSubjectMessage | undefined): AlertSubject | undefined {
  const subject = message?.subject;
  if (subject === undefined || subject.case === undefined) return undefined;
  return { kind: SUBJECT_KIND[subject.case], value: subject.value };
}

/** A request's rule as the domain validates it; `rule` absent is the request's fault. */
function ruleInput(rule: AlertRuleMessage | undefined): AlertRuleInput {
  if (!rule) throw AppError.invalidField('rule', 'is required');
  const input: AlertRuleInput = {
    name: rule.name,
    eventType: rule.eventType,
    recipients: rule.recipients && {
      userIds: rule.recipients.userIds,
      groups: rule.recipients.groups,
      targetOwner: rule.recipients.targetOwner,
      dashboard: rule.recipients.dashboard,
    },
  };
  if (rule.enabled !== undefined) input.enabled = rule.enabled;
  const { condition } = rule;
  switch (condition.case) {
    case 'milestone':
      input.condition = {
        kind: 'milestone',
        subject: subjectOf(condition.value.subject),
        // Beyond 2^53 a number is not safe, and the domain refuses it by name.
        thresholds: condition.value.thresholds.map((t) => Number(t)),
      };
      break;
    case 'threshold':
      input.condition = {
        kind: 'threshold',
        subject: subjectOf(condition.value.subject),
        measure: condition.value.measure,
        windowMinutes: condition.value.windowMinutes,
        threshold: condition.value.threshold,
        ...(condition.value.rearmMinutes === undefined ? {} : { rearmMinutes: condition.value.rearmMinutes }),
      };
      break;
    case 'spike': {
      const s = condition.value;
      input.condition = {
        kind: 'spike',
        subject: subjectOf(s.subject),
        ...(s.halfLifeMinutes === undefined ? {} : { halfLifeMinutes: s.halfLifeMinutes }),
        ...(s.zThreshold === undefined ? {} : { zThreshold: s.zThreshold }),
        ...(s.zClear === undefined ? {} : { zClear: s.zClear }),
        ...(s.minCount === undefined ? {} : { minCount: s.minCount }),
        ...(s.minRatio === undefined ? {} : { minRatio: s.minRatio }),
        ...(s.warmupMinutes === undefined ? {} : { warmupMinutes: s.warmupMinutes }),
      };
      break;
    }
  }
  return input;
}

function subjectMessage(subject: AlertSubject): MessageInitShape<typeof AlertSubjectSchema> {
  return { subject: { case: SUBJECT_CASE[subject.kind], value: subject.value } };
}

/** A stored rule as the API answers it, every default filled. */
export function toMessage(rule: AlertRule): MessageInitShape<typeof AlertRuleSchema> {
  const c = rule.condition;
  const condition: MessageInitShape<typeof AlertRuleSchema>['condition'] =
    c.kind === 'milestone'
      ? {
          case: 'milestone',
          value: { subject: subjectMessage(c.subject), thresholds: c.thresholds.map((t) => BigInt(t)) },
        }
      : c.kind === 'threshold'
        ? {
            case: 'threshold',
            value: {
              subject: subjectMessage(c.subject),
              measure: c.measure,
              windowMinutes: c.windowMinutes,
              threshold: c.threshold,
              rearmMinutes: c.rearmMinutes,
            },
          }
        : {
            case: 'spike',
            value: {
              subject: subjectMessage(c.subject),
              halfLifeMinutes: c.halfLifeMinutes,
              zThreshold: c.zThreshold,
              zClear: c.zClear,
              minCount: c.minCount,
              minRatio: c.minRatio,
              warmupMinutes: c.warmupMinutes,
            },
          };
  return {
    id: rule.id,
    name: rule.name,
    enabled: rule.enabled,
    eventType: rule.eventType,
    recipients: { ...rule.recipients },
    condition,
    createdAt: timestampFromMs(rule.createdAt.getTime()),
    updatedAt: timestampFromMs(rule.updatedAt.getTime()),
    revision: BigInt(rule.revision),
  };
}
