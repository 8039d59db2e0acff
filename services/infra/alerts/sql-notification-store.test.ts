import { migratedPgliteCopies } from '../../testing/migrated-sql.ts';
import { notificationStoreContract } from './notification-store.contract.ts';

notificationStoreContract('PGlite', migratedPgliteCopies('notifications'));
