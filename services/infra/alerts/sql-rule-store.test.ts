import { migratedPgliteCopies } from '../../testing/migrated-sql.ts';
import { ruleStoreContract } from './rule-store.contract.ts';

ruleStoreContract('PGlite', migratedPgliteCopies('alerts'));
