/**
 * The three Reflect metadata functions @peculiar/x509's dependency tsyringe
 * insists on (it throws at import without a "reflect polyfill"). It reads
 * constructor parameter metadata that x509's classes never declare, so this
 * store of nothing is all it needs; the `reflect-metadata` package would do
 * the same job, but is not a dependency. Imported before @peculiar/x509,
 * and it leaves a real polyfill alone when one is already loaded.
 */
type Store = Map<unknown, unknown>;
const stores = new WeakMap<object, Store>();

function storeOf(target: object, create: boolean): Store | undefined {
  let s = stores.get(target);
  if (!s && create) stores.set(target, (s = new Map()));
  return s;
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== "function") {
  reflect.defineMetadata = (key: unknown, value: unknown, target: object) => void storeOf(target, true)!.set(key, value);
  reflect.getOwnMetadata = (key: unknown, target: object) => storeOf(target, false)?.get(key);
  reflect.getMetadata = (key: unknown, target: object) => {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o) as object | null) {
      const s = storeOf(o, false);
      if (s?.has(key)) return s.get(key);
    }
    return undefined;
  };
}

export {};
