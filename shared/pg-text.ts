/**
 * Session settings under which PostgreSQL's text output of every value is exact and identical on both
 * sides (the primary's walsender and COPY sessions, the replica's apply sessions): ISO dates in UTC,
 * shortest-exact floats, hex bytea, standard strings.
 */
export const TEXT_SESSION_OPTIONS =
  '-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex -c standard_conforming_strings=on';
