/**
 * Random-access reads from a file through one `Deno.FsFile`: seek + read of exactly the bytes asked for, serialised so
 * concurrent reads on the same handle never interleave their seeks.
 *
 * @module
 */

/** A file opened for byte-range reads. */
export class RangeFile {
  #file: Deno.FsFile | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** The path the file was opened from (used in error messages). */
  readonly path: string;
  /** The file's size in bytes when it was opened. */
  readonly size: number;

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.size = size;
  }

  /**
   * Opens `path` for reading.
   * @throws {Deno.errors.NotFound} (re-thrown with the path) when the file does not exist.
   */
  static async open(path: string): Promise<RangeFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`weights file not found: ${path}`);
      throw e;
    }
    try {
      const st = await file.stat();
      if (!st.isFile) throw new TypeError(`${path} is not a regular file`);
      return new RangeFile(path, file, st.size);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Reads `length` bytes at `offset` into a fresh buffer.
   * @throws {RangeError} "truncated" when the range runs past the end of the file.
   */
  read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const run = async () => {
      const file = this.#file;
      if (!file) throw new Error(`${this.path} was closed`);
      if (offset < 0 || length < 0 || offset + length > this.size) {
        throw new RangeError(
          `${this.path} is truncated: bytes [${offset}, ${offset + length}) requested but the file has ${this.size}`,
        );
      }
      const out = new Uint8Array(length);
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < length) {
        // Deno caps a single read; loop until the range is filled.
        const n = await file.read(out.subarray(done));
        if (n === null) {
          throw new RangeError(`${this.path} is truncated: unexpected end of file at byte ${offset + done}`);
        }
        done += n;
      }
      return out;
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** Closes the handle; idempotent. */
  close(): void {
    const f = this.#file;
    this.#file = undefined;
    f?.close();
  }
}
