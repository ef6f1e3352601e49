/**
 * Heap page ranges: how one table is copied in parts at once under the same snapshot. The ranges split
 * the table by `ctid`, so every row version lies in exactly one of them; the last range is open-ended,
 * for pages added after the size was read.
 */

/** A range of heap pages: [fromPage, toPage), toPage null meaning to the end. */
export interface PageRange {
  fromPage: number;
  toPage: number | null;
}

/** Splits `pages` heap pages into `parts` ranges, the last one open-ended (the table may have grown). */
export function pageRanges(pages: number, parts: number): PageRange[] {
  return Array.from({ length: parts }, (_, i) => ({
    fromPage: Math.floor((pages * i) / parts),
    toPage: i === parts - 1 ? null : Math.floor((pages * (i + 1)) / parts),
  }));
}

/** The WHERE condition selecting the rows of `range` (a TID range scan from PostgreSQL 14 on). */
export function pageRangeCondition(range: PageRange): string {
  const upper = range.toPage === null ? '' : ` AND ctid < '(${range.toPage},0)'::tid`;
  return `ctid >= '(${range.fromPage},0)'::tid${upper}`;
}
