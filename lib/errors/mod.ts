/**
 * Errors that reach the user. A `UserError` carries where the problem is (file,
 * pipeline step, field path) and what was expected, so the CLI can print one
 * clear message instead of a stack trace. Anything else that escapes is a bug.
 *
 * @module
 */

/** Where a user-facing problem was found. All parts are optional. */
export interface ErrorLocation {
  /** The file at fault: a pipeline file, an audio file, a checkpoint… */
  file?: string;
  /** The pipeline step that was running or being validated. */
  step?: string;
  /** The field path inside the file or the parameters, e.g. `steps.tokenize.params.codebook_size`. */
  field?: string;
}

/** A problem the user can fix: bad input, missing file, limits exceeded. */
export class UserError extends Error {
  readonly location: ErrorLocation;
  /** What would have been accepted, e.g. "an integer from 2 to 65536". */
  readonly expected?: string;
  /** What was found instead. */
  readonly found?: string;
  /** A hint on how to fix it. */
  readonly hint?: string;

  constructor(
    message: string,
    options: ErrorLocation & { expected?: string; found?: string; hint?: string; cause?: unknown } =
      {},
  ) {
    super(message, { cause: options.cause });
    this.name = "UserError";
    this.location = { file: options.file, step: options.step, field: options.field };
    this.expected = options.expected;
    this.found = options.found;
    this.hint = options.hint;
  }

  /** The error with extra location filled in where it was missing (e.g. the step, by the runner). */
  withLocation(extra: ErrorLocation): UserError {
    const e = new UserError(this.message, {
      file: this.location.file ?? extra.file,
      step: this.location.step ?? extra.step,
      field: this.location.field ?? extra.field,
      expected: this.expected,
      found: this.found,
      hint: this.hint,
      cause: this.cause,
    });
    return e;
  }

  /** A multi-line, human-readable rendering: location, message, expected/found, hint. */
  format(): string {
    const where = [
      this.location.file && `file ${this.location.file}`,
      this.location.step && `step "${this.location.step}"`,
      this.location.field && `field ${this.location.field}`,
    ].filter(Boolean).join(", ");
    const lines = [where ? `${where}: ${this.message}` : this.message];
    if (this.expected !== undefined) lines.push(`  expected: ${this.expected}`);
    if (this.found !== undefined) lines.push(`  found:    ${this.found}`);
    if (this.hint !== undefined) lines.push(`  hint:     ${this.hint}`);
    return lines.join("\n");
  }
}
