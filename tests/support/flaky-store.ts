import { MemoryKvStore } from "../../src/ports/kv-store.ts";

/** A store whose next `failures` writes fail, as a full disk or an I/O error would. */
export class FlakyStore extends MemoryKvStore {
  failures = 0;
  private readonly sizes: Array<{ checkpointChars: number }> = [];
  override write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    if (this.failures > 0) {
      this.failures--;
      throw new Error("disk I/O error");
    }
    super.write(puts, deletes);
    let checkpointChars = 0;
    for (const [key, value] of puts) if (key.startsWith("a/")) checkpointChars += value.length;
    this.sizes.push({ checkpointChars });
  }

  /** For each write that landed: the characters of the actors' own rows it wrote (their checkpoints). */
  commitSizes(): ReadonlyArray<{ checkpointChars: number }> {
    return this.sizes;
  }

  /** Rows of the self-hosted runtime's commit journal. */
  journalRows(): number {
    return this.list("j/").length;
  }
}
