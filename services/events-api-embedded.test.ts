/** The event log API's contract (events-api.contract.ts) on PGlite, the embedded mode's SQL adapter. */
import { eventsApiContract } from './events-api.contract.ts';
import { migratedPgliteCopies } from './testing/migrated-sql.ts';

eventsApiContract('PGlite', migratedPgliteCopies('events-api'));
