/**
 * transactions: card holders paying merchants. Payments arrive as a Poisson process, each by a
 * uniformly chosen card holder, so each holder's payments are a Poisson process of rate
 * rate/users (exponential gaps, coefficient of variation 1). The merchant is Zipf-popular
 * (s = 1.0); the amount is log-normal around the merchant's own typical amount (itself
 * log-normal across merchants, median 30), in cents, in the merchant's currency.
 */
import { EntityHash, Prng } from './prng.ts';
import { type EventSource, type ScenarioOptions, type SimEvent, toCents } from './sim-event.ts';
import { ZipfSampler } from './zipf.ts';

export const TRANSACTIONS = Object.freeze({
  merchantZipfExponent: 1.0,
  /** Median of the merchants' typical amounts, and their spread (σ of the log). */
  merchantMedianAmount: 30,
  merchantSigma: 0.9,
  /** Spread of one merchant's amounts around its typical amount (σ of the log). */
  paymentSigma: 0.5,
  currencies: [
    ['EUR', 55],
    ['USD', 25],
    ['GBP', 12],
    ['CHF', 5],
    ['SEK', 3],
  ] as const,
  onlineShare: 0.35,
});

const SALT_MERCHANT_AMOUNT = 0x2545f491;
const SALT_MERCHANT_CURRENCY = 0x4cf5ad43;
const SALT_CARD_BRAND = 0x1656667b;
const SALT_CARD_BIN = 0x7f4a7c15;
const SALT_CARD_LAST4 = 0x165667b1;

export function createTransactions(options: ScenarioOptions): EventSource {
  const t = TRANSACTIONS;
  const prng = new Prng(options.seed, 3);
  const hash = new EntityHash(options.seed);
  const merchants = new ZipfSampler(options.targets, t.merchantZipfExponent);
  const meanGapMs = 1000 / options.ratePerSecond;
  const currencyTotal = t.currencies.reduce((sum, [, w]) => sum + w, 0);
  let sequence = 0;
  let atMs = 0;

  const currencyOf = (merchant: number): string => {
    let r = hash.unit(SALT_MERCHANT_CURRENCY, merchant) * currencyTotal;
    for (const [code, weight] of t.currencies) {
      r -= weight;
      if (r < 0) return code;
    }
    return 'EUR';
  };

  /** A masked card number as receipts show it: BIN (first 6) and last 4. */
  const cardOf = (holder: number): string => {
    const visa = hash.unit(SALT_CARD_BRAND, holder) < 0.6;
    const bin = visa
      ? `4${String(hash.int(SALT_CARD_BIN, holder, 100_000)).padStart(5, '0')}`
      : `5${1 + hash.int(SALT_CARD_BRAND ^ 1, holder, 5)}${String(hash.int(SALT_CARD_BIN, holder, 10_000)).padStart(4, '0')}`;
    return `${bin}******${String(hash.int(SALT_CARD_LAST4, holder, 10_000)).padStart(4, '0')}`;
  };

  return {
    next(): SimEvent {
      atMs += prng.exponential(meanGapMs);
      const holder = 1 + prng.int(options.users);
      const merchant = merchants.sample(prng);
      const typical =
        t.merchantMedianAmount * Math.exp(t.merchantSigma * hash.normal(SALT_MERCHANT_AMOUNT, merchant));
      return {
        id: `${options.idPrefix}-${++sequence}`,
        type: 'transaction',
        target: `merchant/${merchant}`,
        userId: `cardholder-${holder}`,
        ip: '',
        value: toCents(prng.logNormal(typical, t.paymentSigma)),
        attributes: {
          currency: currencyOf(merchant),
          card: cardOf(holder),
          channel: prng.chance(t.onlineShare) ? 'online' : 'in_store',
        },
        modelTimeMs: atMs,
      };
    },
  };
}
