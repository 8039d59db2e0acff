import { migratedPgliteCopies } from '../testing/migrated-sql.ts';
import { eventPartitionsContract } from './persister-partitions.contract.ts';

const copies = migratedPgliteCopies('partitions');
eventPartitionsContract('PGlite', copies);
