import { migratedPgliteCopies } from '../../testing/migrated-sql.ts';
import { destinationStoreContract } from './destination-store.contract.ts';

destinationStoreContract('PGlite', migratedPgliteCopies('destinations'));
