/**
 * Whose stored events a caller may list (docs/events-api.md, "Access"). A listing names exactly
 * one subject: a user or a target. A caller with scope read lists any user's and any target's
 * events, except an end user — a JWT naming a user, without scope admin — who lists only its own
 * user's: a target's events are other users' too. `me` names the caller's own user.
 */
import type { Principal } from './api-keys.ts';

/** The user `me` stands for. */
export const ME = 'me';

/** What a listing names: a user and a target (`''`: not given); exactly one must be given. */
export interface EventSelection {
  user: string;
  target: string;
}

/** The subject a listing reads. */
export type EventSubject = { kind: 'user'; id: string } | { kind: 'target'; id: string };

/** What the caller may list, or the field at fault: invalid (`denied` false) or not allowed. */
export type EventSubjectDecision =
  | { ok: true; subject: EventSubject }
  | { ok: false; denied: boolean; field: 'user' | 'target'; reason: string };

const invalid = (field: 'user' | 'target', reason: string): EventSubjectDecision => ({
  ok: false,
  denied: false,
  field,
  reason,
});

/** The user an end user's credential speaks for: a JWT's subject, unless it administers. */
function endUser(principal: Principal | undefined): string | undefined {
  if (principal?.kind !== 'jwt' || principal.userId === undefined) return undefined;
  return principal.scopes.has('admin') ? undefined : principal.userId;
}

/** The subject `principal` lists for `selection`, or why not. */
export function eventSubjectFor(
  principal: Principal | undefined,
  selection: EventSelection,
): EventSubjectDecision {
  if (selection.user === '' && selection.target === '')
    return invalid('user', 'one of user and target is required');
  if (selection.user !== '' && selection.target !== '')
    return invalid('target', 'cannot be given with user: list one user or one target');
  const own = principal?.kind === 'jwt' ? principal.userId : undefined;
  const user = endUser(principal);
  if (selection.target !== '') {
    if (user === undefined) return { ok: true, subject: { kind: 'target', id: selection.target } };
    return {
      ok: false,
      denied: true,
      field: 'target',
      reason: `a token for user ${JSON.stringify(user)} may list only its own events (user "me")`,
    };
  }
  let id = selection.user;
  if (id === ME) {
    if (own === undefined)
      return invalid('user', '"me" needs a token that names a user (a JWT with a subject)');
    id = own;
  }
  if (user !== undefined && id !== user)
    return {
      ok: false,
      denied: true,
      field: 'user',
      reason: `a token for user ${JSON.stringify(user)} may list only its own events (user ${JSON.stringify(user)} or "me")`,
    };
  return { ok: true, subject: { kind: 'user', id } };
}
