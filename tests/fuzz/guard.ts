/**
 * Prototype-pollution guard for the in-process app: the app runs in the test's own process, so an
 * input that writes to Object.prototype (an event_type "__proto__" used as a plain-object key, say)
 * would poison the test runner too. After every in-process request the guard compares the shared
 * built-ins with a snapshot, reports what changed, and puts them back.
 */

const WATCHED: Array<[string, object]> = [
  ["Object.prototype", Object.prototype],
  ["Object", Object],
  ["Array.prototype", Array.prototype],
  ["Array", Array],
  ["Function.prototype", Function.prototype],
  ["String.prototype", String.prototype],
  ["Number.prototype", Number.prototype],
  ["Boolean.prototype", Boolean.prototype],
  ["Map.prototype", Map.prototype],
  ["Set.prototype", Set.prototype],
  ["Promise.prototype", Promise.prototype],
  ["JSON", JSON],
];

type Snapshot = Array<{ name: string; target: object; props: Map<PropertyKey, PropertyDescriptor>; proto: object | null; extensible: boolean }>;

export class PollutionGuard {
  private readonly snapshot: Snapshot;

  constructor() {
    this.snapshot = WATCHED.map(([name, target]) => ({
      name,
      target,
      props: new Map(Reflect.ownKeys(target).map((k) => [k, Reflect.getOwnPropertyDescriptor(target, k)!])),
      proto: Reflect.getPrototypeOf(target),
      extensible: Reflect.isExtensible(target),
    }));
  }

  /** What changed since the snapshot (empty when nothing did); restores the snapshot. */
  checkAndRestore(): string[] {
    const changes: string[] = [];
    for (const { name, target, props, proto } of this.snapshot) {
      for (const k of Reflect.ownKeys(target)) {
        const before = props.get(k);
        const now = Reflect.getOwnPropertyDescriptor(target, k)!;
        if (!before) {
          changes.push(`${name}.${String(k)} was added (${describe(now)})`);
          Reflect.deleteProperty(target, k);
        } else if (!sameDescriptor(before, now)) {
          changes.push(`${name}.${String(k)} was changed (${describe(now)})`);
          Reflect.defineProperty(target, k, before);
        }
      }
      for (const [k, before] of props) {
        if (!Reflect.getOwnPropertyDescriptor(target, k)) {
          changes.push(`${name}.${String(k)} was deleted`);
          Reflect.defineProperty(target, k, before);
        }
      }
      if (Reflect.getPrototypeOf(target) !== proto) {
        changes.push(`the prototype of ${name} was replaced`);
        Reflect.setPrototypeOf(target, proto);
      }
    }
    return changes;
  }
}

function sameDescriptor(a: PropertyDescriptor, b: PropertyDescriptor): boolean {
  return Object.is(a.value, b.value) && a.get === b.get && a.set === b.set && a.writable === b.writable && a.enumerable === b.enumerable && a.configurable === b.configurable;
}

function describe(d: PropertyDescriptor): string {
  if (d.get || d.set) return "accessor";
  const v = d.value;
  const text = typeof v === "function" ? "function" : typeof v === "object" && v !== null ? "object" : String(v);
  return `value ${text}`;
}
