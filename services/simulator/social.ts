/**
 * social: users reacting to posts. Actions arrive as a Poisson process, each by a uniformly
 * chosen user (so every user's actions are a Poisson process too): 70% like, 15% comment,
 * 7% share, 8% post. A `post` creates a new post (`post/<targets + k>`); a reaction goes to
 * one of the 200 newest posts of the run a quarter of the time, otherwise to the catalogue
 * `post/1..targets` with Zipf popularity (s = 1.1). Every event carries `owner`, the post's author.
 */
import { EntityHash, Prng } from './prng.ts';
import type { EventSource, ScenarioOptions, SimEvent } from './sim-event.ts';
import { ZipfSampler } from './zipf.ts';

export const SOCIAL = Object.freeze({
  typeMix: [
    ['like', 0.7],
    ['comment', 0.15],
    ['share', 0.07],
    ['post', 0.08],
  ] as const,
  postZipfExponent: 1.1,
  /** Share of reactions that go to a post created during the run. */
  recentShare: 0.25,
  /** How many of the newest posts get that attention. */
  recentPosts: 200,
});

const SALT_OWNER = 0x68e31da4;

export function createSocial(options: ScenarioOptions): EventSource {
  const prng = new Prng(options.seed, 2);
  const hash = new EntityHash(options.seed);
  const catalogue = new ZipfSampler(options.targets, SOCIAL.postZipfExponent);
  const meanGapMs = 1000 / options.ratePerSecond;
  const recent: { post: number; owner: number }[] = [];
  let created = 0;
  let sequence = 0;
  let atMs = 0;

  return {
    next(): SimEvent {
      atMs += prng.exponential(meanGapMs);
      const user = 1 + prng.int(options.users);
      const type = prng.weighted(SOCIAL.typeMix);
      let post: number;
      let owner: number;
      if (type === 'post') {
        post = options.targets + ++created;
        owner = user;
        recent[(created - 1) % SOCIAL.recentPosts] = { post, owner };
      } else if (recent.length > 0 && prng.chance(SOCIAL.recentShare)) {
        const pick = recent[prng.int(recent.length)]!;
        post = pick.post;
        owner = pick.owner;
      } else {
        post = catalogue.sample(prng);
        owner = 1 + hash.int(SALT_OWNER, post, options.users);
      }
      return {
        id: `${options.idPrefix}-${++sequence}`,
        type,
        target: `post/${post}`,
        userId: `user-${user}`,
        ip: '',
        value: undefined,
        attributes: { owner: `user-${owner}` },
        modelTimeMs: atMs,
      };
    },
  };
}
