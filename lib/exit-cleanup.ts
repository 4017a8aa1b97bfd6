/**
 * Last-chance cleanup for things that outlive a process if it dies (fake-node namespaces, a test API server and
 * its etcd): on exit or on SIGINT/SIGTERM/SIGHUP every registered participant is destroyed synchronously (no
 * event-loop turn is left at that point), then the signal is re-raised so the process still dies of it.
 * One registry for the whole process, so every library's leftovers go whichever signal comes first.
 */

export interface ExitParticipant {
  /** Kills what is still running and removes files, synchronously. */
  destroySync(): void;
}

const participants = new Set<ExitParticipant>();
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function cleanupAll(): void {
  for (const p of [...participants]) {
    try {
      p.destroySync();
    } catch {
      // best effort: the process is going away
    }
  }
  participants.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAll();
  uninstall();
  // Our listener replaced Node's default "exit on signal"; restore it unless someone else handles the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  process.on('exit', cleanupAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  process.off('exit', cleanupAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Includes `p` in the exit-time cleanup until unregisterForExit. */
export function registerForExit(p: ExitParticipant): void {
  if (participants.size === 0) install();
  participants.add(p);
}

export function unregisterForExit(p: ExitParticipant): void {
  if (participants.delete(p) && participants.size === 0) uninstall();
}
