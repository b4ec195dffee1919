package keyflow.kstreams;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.lang.reflect.Proxy;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Properties;
import java.util.Set;
import java.util.function.Predicate;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.BuiltInDslStoreSuppliers;
import org.apache.kafka.streams.state.DslKeyValueParams;
import org.apache.kafka.streams.state.DslSessionParams;
import org.apache.kafka.streams.state.DslWindowParams;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionBytesStoreSupplier;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowBytesStoreSupplier;
import org.apache.kafka.streams.state.WindowStore;

/**
 * keyflow's job in Kafka Streams. Input: JSON events keyed by user_id on {@link #INPUT}. Per key:
 * dedupe by event_id (a state store), then tumbling 1m and 1h windows (count, sum, min, max), each
 * emitted once when it closes (suppress untilWindowCloses, grace 60 s: keyflow's emit=final and
 * allowed lateness). The analytics job adds sliding windows (10m) and session windows (30m gap) and
 * three rules: enrichment (high_value when value > 1000), an alert when a 1m window's count first
 * exceeds 10 and one when a 1h window's sum first exceeds 5000, each at most once per window.
 */
public final class Job {
  public static final String INPUT = "kf-events";
  public static final String W1M = "kf-windows-1m";
  public static final String W1H = "kf-windows-1h";
  public static final String SLIDING = "kf-windows-sliding-10m";
  public static final String SESSION = "kf-windows-session-30m";
  public static final String ALERTS = "kf-alerts";
  public static final String[] OUTPUTS = {W1M, W1H, SLIDING, SESSION, ALERTS};

  static final Duration GRACE = Duration.ofSeconds(60);
  static final String DEDUPE_STORE = "dedupe";

  /**
   * @param analytics sliding + session windows and the three rules on top of the tumbling windows
   * @param rocksdb RocksDB stores (Kafka Streams' default) instead of in-memory ones
   * @param changelogs changelog topics for every store (a real app); off under TopologyTestDriver
   * @param flushRocksDb off under TopologyTestDriver only: see {@link NoFlushRocksDb}
   */
  public record Options(boolean analytics, boolean rocksdb, boolean changelogs, boolean flushRocksDb) {}

  /** An event as keyflow's HTTP API takes it; high_value is what the enrichment rule sets. */
  public record Event(
      @JsonProperty("event_id") String eventId,
      @JsonProperty("event_type") String eventType,
      @JsonProperty("user_id") String userId,
      @JsonProperty("timestamp") long timestamp,
      @JsonProperty("value") double value,
      @JsonProperty("high_value") boolean highValue) {}

  /** A window's aggregates; `alerted` is set when its rule first held, `fired` only on that update. */
  public record Agg(long count, double sum, double min, double max, boolean alerted, boolean fired) {
    static final Agg EMPTY = new Agg(0, 0, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, false, false);

    Agg add(double v, Predicate<Agg> rule) {
      Agg next = new Agg(count + 1, sum + v, Math.min(min, v), Math.max(max, v), alerted, false);
      return rule != null && !alerted && rule.test(next) ? new Agg(next.count, next.sum, next.min, next.max, true, true) : next;
    }

    Agg merge(Agg o) {
      return new Agg(count + o.count, sum + o.sum, Math.min(min, o.min), Math.max(max, o.max), alerted || o.alerted, false);
    }

    String json(String key, String shape, long start, long end) {
      return "{\"kind\":\"window\",\"key\":\"" + key + "\",\"window\":\"" + shape + "\",\"start\":" + start + ",\"end\":" + end
          + ",\"count\":" + count + ",\"sum\":" + sum + ",\"min\":" + min + ",\"max\":" + max + "}";
    }
  }

  static final ObjectMapper JSON = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  static final Serde<Event> EVENT_SERDE = Serdes.serdeFrom(
      (Serializer<Event>) (topic, e) -> {
        try {
          return JSON.writeValueAsBytes(e);
        } catch (IOException x) {
          throw new IllegalStateException(x);
        }
      },
      (Deserializer<Event>) (topic, bytes) -> {
        try {
          return JSON.readValue(bytes, Event.class);
        } catch (IOException x) {
          throw new IllegalStateException(x);
        }
      });

  static final Serde<Agg> AGG_SERDE = Serdes.serdeFrom(
      (Serializer<Agg>) (topic, a) -> ByteBuffer.allocate(34).putLong(a.count).putDouble(a.sum).putDouble(a.min).putDouble(a.max)
          .put((byte) (a.alerted ? 1 : 0)).put((byte) (a.fired ? 1 : 0)).array(),
      (Deserializer<Agg>) (topic, bytes) -> {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        return new Agg(b.getLong(), b.getDouble(), b.getDouble(), b.getDouble(), b.get() == 1, b.get() == 1);
      });

  /** Drops an event whose (key, event_id) was seen before, as keyflow's per-actor dedupe index does. */
  static final class Dedupe implements FixedKeyProcessor<String, Event, Event> {
    private FixedKeyProcessorContext<String, Event> context;
    private KeyValueStore<String, Long> seen;

    @Override
    public void init(FixedKeyProcessorContext<String, Event> context) {
      this.context = context;
      this.seen = context.getStateStore(DEDUPE_STORE);
    }

    @Override
    public void process(FixedKeyRecord<String, Event> record) {
      String id = record.key() + '\u0000' + record.value().eventId();
      if (seen.get(id) != null) return;
      seen.put(id, record.value().timestamp());
      context.forward(record);
    }
  }

  public static Properties props(Options o, String appId) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "127.0.0.1:9092");
    p.put(StreamsConfig.DSL_STORE_SUPPLIERS_CLASS_CONFIG,
        !o.rocksdb() ? BuiltInDslStoreSuppliers.InMemoryDslStoreSuppliers.class
            : o.flushRocksDb() ? BuiltInDslStoreSuppliers.RocksDBDslStoreSuppliers.class : NoFlushRocksDb.class);
    return p;
  }

  /** The topology over topics named `prefix` + INPUT, W1M, ...: "" under the driver, a per-run prefix on the broker. */
  public static Topology build(Options o, Properties props, String prefix) {
    StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(props)));
    KeyValueBytesStoreSupplier dedupeSupplier = o.rocksdb() ? Stores.persistentKeyValueStore(DEDUPE_STORE) : Stores.inMemoryKeyValueStore(DEDUPE_STORE);
    if (o.rocksdb() && !o.flushRocksDb()) dedupeSupplier = withoutFlush(dedupeSupplier, KeyValueBytesStoreSupplier.class);
    StoreBuilder<KeyValueStore<String, Long>> dedupe = Stores.keyValueStoreBuilder(dedupeSupplier, Serdes.String(), Serdes.Long());
    builder.addStateStore(o.changelogs() ? dedupe : dedupe.withLoggingDisabled());

    KStream<String, Event> events = builder
        .stream(prefix + INPUT, Consumed.with(Serdes.String(), EVENT_SERDE).withTimestampExtractor((record, previous) -> ((Event) record.value()).timestamp()))
        .processValues(Dedupe::new, DEDUPE_STORE);
    if (o.analytics()) {
      events = events.mapValues(e -> e.value() > 1000 ? new Event(e.eventId(), e.eventType(), e.userId(), e.timestamp(), e.value(), true) : e);
    }
    KGroupedStream<String, Event> byKey = events.groupByKey();

    Predicate<Agg> countOver10 = o.analytics() ? a -> a.count() > 10 : null;
    Predicate<Agg> sumOver5000 = o.analytics() ? a -> a.sum() > 5000 : null;
    KTable<Windowed<String>, Agg> w1m = byKey.windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), GRACE))
        .aggregate(() -> Agg.EMPTY, (k, e, a) -> a.add(e.value(), countOver10), Job.<WindowStore<Bytes, byte[]>>materialized(o));
    KTable<Windowed<String>, Agg> w1h = byKey.windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofHours(1), GRACE))
        .aggregate(() -> Agg.EMPTY, (k, e, a) -> a.add(e.value(), sumOver5000), Job.<WindowStore<Bytes, byte[]>>materialized(o));
    emitFinal(w1m, "1m", prefix + W1M, o);
    emitFinal(w1h, "1h", prefix + W1H, o);

    if (o.analytics()) {
      emitFinal(byKey.windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMinutes(10), GRACE))
          .aggregate(() -> Agg.EMPTY, (k, e, a) -> a.add(e.value(), null), materialized(o)), "sliding:10m", prefix + SLIDING, o);
      emitFinal(byKey.windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMinutes(30), GRACE))
          .aggregate(() -> Agg.EMPTY, (k, e, a) -> a.add(e.value(), null), (k, a, b) -> a.merge(b), materialized(o)), "session:30m", prefix + SESSION, o);
      alerts(w1m, "count_1m_over_10", "count").to(prefix + ALERTS, Produced.with(Serdes.String(), Serdes.String()));
      alerts(w1h, "sum_1h_over_5000", "sum").to(prefix + ALERTS, Produced.with(Serdes.String(), Serdes.String()));
    }
    return builder.build();
  }

  /**
   * No record cache: every event's update reaches the suppress buffers and the rules (which need
   * each update to find a threshold's first crossing), as every event updates keyflow's windows.
   * Under TopologyTestDriver, which commits (and so flushes the caches) after every record, a cache
   * would fold nothing and its flushes made the analytics job 10x slower.
   */
  private static <S extends org.apache.kafka.streams.processor.StateStore> Materialized<String, Agg, S> materialized(Options o) {
    Materialized<String, Agg, S> m = Materialized.<String, Agg, S>with(Serdes.String(), AGG_SERDE).withCachingDisabled();
    return o.changelogs() ? m : m.withLoggingDisabled();
  }

  private static void emitFinal(KTable<Windowed<String>, Agg> table, String shape, String topic, Options o) {
    Suppressed.StrictBufferConfig buffer = Suppressed.BufferConfig.unbounded();
    table.suppress(Suppressed.untilWindowCloses(o.changelogs() ? buffer : buffer.withLoggingDisabled()))
        .toStream()
        .map((w, a) -> KeyValue.pair(w.key(), a.json(w.key(), shape, w.window().start(), w.window().end())))
        .to(topic, Produced.with(Serdes.String(), Serdes.String()));
  }

  private static KStream<String, String> alerts(KTable<Windowed<String>, Agg> table, String rule, String aggregate) {
    return table.toStream()
        .filter((w, a) -> a != null && a.fired())
        .map((w, a) -> KeyValue.pair(w.key(), "{\"kind\":\"alert\",\"rule\":\"" + rule + "\",\"key\":\"" + w.key() + "\",\"start\":" + w.window().start()
            + ",\"end\":" + w.window().end() + ",\"aggregate\":\"" + aggregate + "\",\"value\":" + (aggregate.equals("count") ? a.count() : a.sum()) + "}"));
  }

  /**
   * RocksDB stores whose flush() does nothing. TopologyTestDriver commits after every record, and a
   * commit flushes every RocksDB memtable to a new SST file: under the driver that measures one disk
   * flush per event. A KafkaStreams app commits every commit.interval.ms (30 s by default), so its
   * RocksDB stores are flushed that often, not per event; the driver's RocksDB variants use these.
   */
  public static final class NoFlushRocksDb extends BuiltInDslStoreSuppliers.RocksDBDslStoreSuppliers {
    @Override
    public KeyValueBytesStoreSupplier keyValueStore(DslKeyValueParams params) {
      return withoutFlush(super.keyValueStore(params), KeyValueBytesStoreSupplier.class);
    }

    @Override
    public WindowBytesStoreSupplier windowStore(DslWindowParams params) {
      return withoutFlush(super.windowStore(params), WindowBytesStoreSupplier.class);
    }

    @Override
    public SessionBytesStoreSupplier sessionStore(DslSessionParams params) {
      return withoutFlush(super.sessionStore(params), SessionBytesStoreSupplier.class);
    }
  }

  /** A supplier whose stores ignore flush(): a proxy over each store with all its public interfaces. */
  static <T> T withoutFlush(T supplier, Class<T> type) {
    return type.cast(Proxy.newProxyInstance(Job.class.getClassLoader(), new Class<?>[] {type}, (proxy, method, args) -> {
      Object result = invoke(supplier, method, args);
      return method.getName().equals("get") && method.getParameterCount() == 0 ? skipFlush(result) : result;
    }));
  }

  private static Object skipFlush(Object store) {
    Set<Class<?>> interfaces = new LinkedHashSet<>();
    for (Class<?> c = store.getClass(); c != null; c = c.getSuperclass()) {
      for (Class<?> i : c.getInterfaces()) if (Modifier.isPublic(i.getModifiers())) interfaces.add(i);
    }
    return Proxy.newProxyInstance(Job.class.getClassLoader(), interfaces.toArray(Class<?>[]::new), (proxy, method, args) ->
        method.getName().equals("flush") && method.getParameterCount() == 0 ? null : invoke(store, method, args));
  }

  private static Object invoke(Object target, java.lang.reflect.Method method, Object[] args) throws Throwable {
    try {
      return method.invoke(target, args);
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
  }

  private Job() {}
}
