/**
 * Who may see which notifications (docs/alerts.md, "Reading notifications"). A notification is
 * addressed to recipients: `user:<id>`, `group:<name>`, `dashboard`. A caller with scope read sees
 * any recipient's and any target's, except an end user — a JWT naming a user, without scope admin
 * — who sees those addressed to `user:<its subject>`, or those about a target it names (as it may
 * read that target's counters). `me` names the caller's own recipient.
 */
import type { Principal } from './api-keys.ts';

/** The recipient `me` stands for. */
export const ME = 'me';

/** The longest recipient accepted (`user:` and a user id, `group:` and a name). */
const MAX_RECIPIENT_CHARS = 200;

/** What a request names: a recipient (`''`: none) and a target (`''`: none). */
export interface NotificationSelection {
  recipient: string;
  target: string;
}

/** What the caller may see of it: the recipient to filter on (absent: any), or why not. */
export type RecipientDecision =
  | { ok: true; recipient?: string }
  | { ok: false; denied: boolean; reason: string };

const invalid = (reason: string): RecipientDecision => ({ ok: false, denied: false, reason });

/** The user an end user's credential speaks for: a JWT's subject, unless it administers. */
function endUser(principal: Principal | undefined): string | undefined {
  if (principal?.kind !== 'jwt' || principal.userId === undefined) return undefined;
  return principal.scopes.has('admin') ? undefined : principal.userId;
}

/** Why `recipient` is not one a notification may have, or undefined. */
export function recipientProblem(recipient: string): string | undefined {
  if (recipient.length > MAX_RECIPIENT_CHARS) return `must be at most ${MAX_RECIPIENT_CHARS} characters`;
  if (recipient === 'dashboard') return undefined;
  if (/^(user|group):.+$/s.test(recipient)) return undefined;
  return 'must be "user:<id>", "group:<name>", "dashboard" or "me"';
}

/**
 * The recipient a listing or a watch of `principal` filters on. `needsOne`: a selection must name a
 * recipient or a target (a watch; a listing may name neither).
 */
export function recipientFor(
  principal: Principal | undefined,
  selection: NotificationSelection,
  needsOne = false,
): RecipientDecision {
  const user = endUser(principal);
  const own =
    principal?.kind === 'jwt' && principal.userId !== undefined ? `user:${principal.userId}` : undefined;
  let recipient = selection.recipient;
  if (recipient === ME) {
    if (!own) return invalid('"me" needs a token that names a user (a JWT with a subject)');
    recipient = own;
  } else if (recipient !== '') {
    const problem = recipientProblem(recipient);
    if (problem) return invalid(problem);
  }
  if (user !== undefined) {
    // An end user: its own notifications, or those about a target it names.
    if (recipient === '') return selection.target === '' ? { ok: true, recipient: own } : { ok: true };
    if (recipient !== own)
      return {
        ok: false,
        denied: true,
        reason: `a token for user ${JSON.stringify(user)} may only read "user:${user}" (or "me")`,
      };
    return { ok: true, recipient };
  }
  if (recipient === '') {
    if (needsOne && selection.target === '') return invalid('name a recipient or a target to watch');
    return { ok: true };
  }
  return { ok: true, recipient };
}

/** The recipient that marks notifications read: the one named, or an end user's own. */
export function readerFor(principal: Principal | undefined, requested: string): RecipientDecision {
  const decision = recipientFor(principal, { recipient: requested, target: '' });
  if (decision.ok && decision.recipient === undefined)
    return invalid('is required: whose notifications were read ("user:<id>", "group:<name>", "dashboard")');
  return decision;
}
