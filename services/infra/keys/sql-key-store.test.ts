import { migratedPgliteCopies } from '../../testing/migrated-sql.ts';
import { keyStoreContract } from './key-store.contract.ts';

keyStoreContract('PGlite', migratedPgliteCopies('keys'));
