import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => Promise<void>;
}

/** Loads with `fn` at mount and whenever `deps` change; polls every `every` ms when given. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], every?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(async () => {
    try {
      const d = await fnRef.current();
      setData(d);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "ERROR", String(e)));
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => {
    setLoading(true);
    void reload();
    if (!every) return undefined;
    // Polls only while the tab is visible: a background tab costs the instance nothing.
    const t = setInterval(() => {
      if (document.visibilityState === "visible") void reload();
    }, every);
    return () => clearInterval(t);
  }, deps);
  return { data, error, loading, reload };
}
