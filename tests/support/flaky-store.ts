import { MemoryKvStore } from "../../src/ports/kv-store.ts";

/** A store whose next `failures` writes fail, as a full disk or an I/O error would. */
export class FlakyStore extends MemoryKvStore {
  failures = 0;
  override write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    if (this.failures > 0) {
      this.failures--;
      throw new Error("disk I/O error");
    }
    super.write(puts, deletes);
  }

  /** Rows of the self-hosted runtime's commit journal. */
  journalRows(): number {
    return this.list("j/").length;
  }
}
