/** SQL identifier quoting for the statements recovery and the initial copy build (shared with the server). */
export { qualifiedName as qualified, quoteIdent } from '../../shared/sql-ident';
