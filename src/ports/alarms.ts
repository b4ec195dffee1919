/** A Durable Object's one alarm. Durable Object storage answers with promises; the simulator at once. */
export interface AlarmStorage {
  setAlarm(atMs: number): void | Promise<void>;
  deleteAlarm(): void | Promise<void>;
}
