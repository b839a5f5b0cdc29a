/** A problem with the command line, the config or the run dir: the CLI prints it and exits 2. */
export class UsageError extends Error {}
