/** An incremental 64-bit trace hash (two FNV-1a lanes): the fingerprint a replay must reproduce. */
export class TraceHash {
  private a = 0x811c9dc5;
  private b = 0x050c5d1f;

  text(s: string): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 13;
    }
    // Separator, so ("ab","c") and ("a","bc") differ.
    this.a = Math.imul(a ^ 0xff, 0x01000193) >>> 0;
    this.b = Math.imul(b ^ 0xff, 0x5bd1e995) >>> 0;
    return this;
  }

  num(n: number): this {
    return this.text(String(n));
  }

  hex(): string {
    return (this.a >>> 0).toString(16).padStart(8, "0") + (this.b >>> 0).toString(16).padStart(8, "0");
  }
}
