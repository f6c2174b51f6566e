/** Exit codes of the `fulcrum` command; scripts can rely on them. */
export const ExitCode = {
  /** Success; also a clean shutdown on SIGINT/SIGTERM. */
  OK: 0,
  /** The daemon failed at run time (the dataplane could not start, an admin port was taken…). */
  FAILURE: 1,
  /** The command line is wrong (unknown command or flag, missing argument). */
  USAGE: 2,
  /** The configuration is invalid or cannot be read; nothing was started. */
  CONFIG: 3,
  /** A second SIGINT/SIGTERM arrived during shutdown: stopped without waiting. */
  FORCED: 130,
} as const;
