import { migratedPgliteCopies } from '../testing/migrated-sql.ts';
import { projectorContract } from './projector.contract.ts';

projectorContract('PGlite', migratedPgliteCopies('projector'));
