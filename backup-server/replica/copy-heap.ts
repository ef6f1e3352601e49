/**
 * V8's heap growing factor while an initial copy runs. A long-lived server's heap shrinks to about 20 MB
 * when idle, and V8 then sets the old-generation limit a few MB above it; an initial copy allocates a
 * fresh buffer for every socket read (hundreds of MB), which counts against that room, so V8 ran a major
 * GC every ~15 MB: about 40 per 570 MB copy, 0.7-1 s of server CPU. With a fixed factor of 3 while a copy
 * runs there are one or two. Node accepts this flag on the command line only (not in NODE_OPTIONS); V8
 * reads it whenever it sets a limit, so setting it at run time takes effect from the next GC, and 0 gives
 * V8 its own dynamic factor back once no copy runs.
 */
import * as v8 from 'node:v8';

const COPY_HEAP_GROWING_PERCENT = 200;
let copies = 0;

/** Applies the copy's factor until the returned release (idempotent) is called by every copy holding it. */
export function holdCopyHeap(): () => void {
  if (copies++ === 0) v8.setFlagsFromString(`--heap-growing-percent=${COPY_HEAP_GROWING_PERCENT}`);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--copies === 0) v8.setFlagsFromString('--heap-growing-percent=0');
  };
}
