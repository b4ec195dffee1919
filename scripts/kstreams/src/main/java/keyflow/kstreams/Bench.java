package keyflow.kstreams;

import java.io.IOException;
import java.lang.reflect.Field;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.apache.kafka.streams.processor.internals.ProcessorStateManager;
import org.apache.kafka.streams.processor.internals.StreamTask;

/**
 * Runs keyflow's bench job in Kafka Streams and prints one JSON line of events/s per variant:
 * tumbling_* (dedupe + tumbling 1m and 1h windows, keyflow's default job) and analytics_* (plus
 * sliding and session windows and three rules), in TopologyTestDriver with in-memory and with
 * RocksDB stores (no broker, no changelogs), and optionally as a KafkaStreams app on a broker.
 * Progress goes to stderr.
 *
 *   java -jar target/kstreams-bench.jar [--events 1000000] [--keys 10000] [--warmup 100000]
 *     [--variants tumbling_inmemory,analytics_inmemory,tumbling_rocksdb,analytics_rocksdb]
 *     [--broker 127.0.0.1:9092 | none] [--broker-variants tumbling[,analytics]] [--broker-timeout 300]
 *     [--dup-rate 0] [--late-rate 0] [--seed 12] [--state-dir /dev/shm] [--driver-commits-as-is]
 */
public final class Bench {
  /**
   * 3 h before now, as keyflow's bench, and on an hour boundary, so that each key's 100 events (10 s)
   * fall into one 1m and one 1h window in every run. Not a fixed date: a broker deletes records with
   * timestamps older than its retention (7 days) while the app still reads them.
   */
  static final long T0 = (System.currentTimeMillis() / 3_600_000L - 3) * 3_600_000L;

  /** Pre-serialized input: keys, JSON values and timestamps; `distinct` events once duplicates are dropped; `late` ones moved back. */
  record Input(String[] keys, byte[][] values, long[] ts, long distinct, long late) {
    int size() {
      return keys.length;
    }
  }

  /**
   * keyflow's benchEvents (scripts/bench-core.ts): id `evt-<i>-<(i * 2654435761) % 1e9>`, type
   * purchase when i % 3 == 0 else page_view, key `user<i % keys>`, timestamp T0 + floor(i / keys) *
   * 100 ms, value i % 100. Optionally (off by default, as in keyflow's stream) a seeded share of
   * duplicates (an earlier event of the same key again) and of late events (up to 90 s back).
   */
  static Input events(int count, int keys, double dupRate, double lateRate, long seed) {
    Random random = new Random(seed);
    String[] k = new String[count];
    byte[][] v = new byte[count][];
    long[] ts = new long[count];
    long dups = 0;
    long late = 0;
    for (int i = 0; i < count; i++) {
      if (i >= keys && random.nextDouble() < dupRate) {
        int j = i - keys * (1 + random.nextInt(Math.min(i / keys, 10)));
        k[i] = k[j];
        v[i] = v[j];
        ts[i] = ts[j];
        dups++;
        continue;
      }
      long t = T0 + (long) (i / keys) * 100;
      if (random.nextDouble() < lateRate) {
        t -= random.nextInt(90_000);
        late++;
      }
      String key = "user" + (i % keys);
      String json = "{\"event_id\":\"evt-" + i + "-" + (i * 2654435761L) % 1_000_000_000L + "\",\"event_type\":\"" + (i % 3 != 0 ? "page_view" : "purchase")
          + "\",\"user_id\":\"" + key + "\",\"timestamp\":" + t + ",\"value\":" + (i % 100) + "}";
      k[i] = key;
      v[i] = json.getBytes(StandardCharsets.UTF_8);
      ts[i] = t;
    }
    return new Input(k, v, ts, count - dups, late);
  }

  /** A last record 3 h after the others (the input has one partition): stream time passes every window's end + grace, so all emit. */
  static byte[] closer(Input in) {
    long t = Arrays.stream(in.ts()).max().orElse(T0) + 3 * 3_600_000L;
    return ("{\"event_id\":\"close\",\"event_type\":\"close\",\"user_id\":\"~close\",\"timestamp\":" + t + ",\"value\":0}").getBytes(StandardCharsets.UTF_8);
  }

  record Run(double eventsPerS, Map<String, Long> outputs) {}

  /**
   * The events the closed 1h windows counted (their "count" fields), put under "events_counted" in
   * `outputs`; every distinct input event falls in one, so anything else is an error (with late
   * events, fewer: those beyond the grace period are dropped).
   */
  static void countEvents(Map<String, Long> outputs, String topic, byte[] value) {
    if (!topic.equals(Job.W1H)) return;
    String json = new String(value, StandardCharsets.UTF_8);
    int at = json.indexOf("\"count\":") + 8;
    int end = at;
    while (Character.isDigit(json.charAt(end))) end++;
    outputs.merge("events_counted", Long.parseLong(json.substring(at, end)), Long::sum);
  }

  static Run checked(String name, Input in, double rate, Map<String, Long> outputs) {
    long counted = outputs.getOrDefault("events_counted", 0L);
    if (in.late() == 0 ? counted != in.distinct() : counted > in.distinct()) throw new IllegalStateException(String.format("%s: the 1h windows counted %,d events of %,d", name, counted, in.distinct()));
    return new Run(rate, outputs);
  }

  /**
   * Where the driver's stores live: tmpfs (/dev/shm) where there is one. The driver commits after
   * every record, and each commit rewrites and fsyncs a position file per RocksDB store: on a disk
   * that measures the fsync, not the engine (a KafkaStreams app commits every 30 s by default).
   */
  static Path stateRoot = Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));

  static void log(String line) {
    System.err.println("[kstreams] " + line);
  }

  /** The input through TopologyTestDriver, then the closing record; events/s over both, outputs drained as they come. */
  static Run driver(String name, Job.Options o, Input in) throws IOException {
    Path dir = Files.createTempDirectory(stateRoot, "kstreams-bench-");
    Properties props = Job.props(o, "kf-bench");
    props.put(StreamsConfig.STATE_DIR_CONFIG, dir.toString());
    Map<String, Long> outputs = new LinkedHashMap<>();
    double rate;
    try (TopologyTestDriver driver = new TopologyTestDriver(Job.build(o, props, ""), props)) {
      if (o.rocksdb() && !o.flushRocksDb()) deferPositionCheckpoints(driver, name);
      TestInputTopic<String, byte[]> input = driver.createInputTopic(Job.INPUT, new StringSerializer(), new ByteArraySerializer());
      List<TestOutputTopic<byte[], byte[]>> topics = new ArrayList<>();
      for (String t : Job.OUTPUTS) {
        topics.add(driver.createOutputTopic(t, new ByteArrayDeserializer(), new ByteArrayDeserializer()));
        outputs.put(t, 0L);
      }
      Runnable drain = () -> {
        for (int t = 0; t < topics.size(); t++) {
          for (TestRecord<byte[], byte[]> r : topics.get(t).readRecordsToList()) {
            outputs.merge(Job.OUTPUTS[t], 1L, Long::sum);
            countEvents(outputs, Job.OUTPUTS[t], r.value());
          }
        }
      };
      long start = System.nanoTime();
      long report = start + 10_000_000_000L;
      for (int i = 0; i < in.size(); i++) {
        input.pipeInput(in.keys()[i], in.values()[i], in.ts()[i]);
        if ((i & 0x3fff) == 0x3fff) {
          drain.run();
          long now = System.nanoTime();
          if (now > report) {
            report = now + 10_000_000_000L;
            log(String.format("%s: %,d of %,d events, %.0f s", name, i + 1, in.size(), (now - start) / 1e9));
          }
        }
      }
      input.pipeInput("~close", closer(in), 0L);
      drain.run();
      rate = in.size() / ((System.nanoTime() - start) / 1e9);
    } finally {
      deleteTree(dir);
    }
    return checked(name, in, rate, outputs);
  }

  /**
   * The driver commits after every record, and on each commit every RocksDB store rewrites its
   * position file (create, write, fsync, rename: most of the time of a RocksDB variant under the
   * driver). A KafkaStreams app does that once per commit.interval.ms (30 s by default), so the
   * driver's RocksDB variants drop those callbacks, reaching into Kafka Streams internals
   * (TopologyTestDriver.task, ProcessorStateManager.stores); if those change, they keep them and say so.
   */
  static void deferPositionCheckpoints(TopologyTestDriver driver, String name) {
    try {
      Field task = TopologyTestDriver.class.getDeclaredField("task");
      task.setAccessible(true);
      ProcessorStateManager manager = ((StreamTask) task.get(driver)).stateManager();
      Field stores = ProcessorStateManager.class.getDeclaredField("stores");
      stores.setAccessible(true);
      for (Object store : ((Map<?, ?>) stores.get(manager)).values()) {
        Field callback = store.getClass().getDeclaredField("commitCallback");
        callback.setAccessible(true);
        callback.set(store, null);
      }
    } catch (ReflectiveOperationException | RuntimeException e) {
      log(name + ": kept the per-record position checkpoints of RocksDB stores (" + e + ")");
    }
  }

  /**
   * The same job as a KafkaStreams app on a broker: RocksDB stores with changelogs, default commit
   * interval, one partition and one stream thread. The input is produced first (not timed); events/s
   * from KafkaStreams.start() to the last expected output record read back from the output topics,
   * so joining the group (about 0.5 s here) is in it: the stream threads process records before the
   * app reports RUNNING, so that state is no start line.
   */
  static Run broker(String bootstrap, String name, Job.Options o, Input in, long expected, int timeoutS) throws Exception {
    String prefix = "kstreams-bench-" + System.currentTimeMillis() + "-";
    String appId = prefix + "app";
    Properties admin = new Properties();
    admin.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    List<String> topics = new ArrayList<>();
    topics.add(prefix + Job.INPUT);
    for (String t : Job.OUTPUTS) topics.add(prefix + t);
    Path dir = Files.createTempDirectory("kstreams-bench-");
    try (Admin a = Admin.create(admin)) {
      a.createTopics(topics.stream().map(t -> new NewTopic(t, 1, (short) 1).configs(Map.of("retention.ms", "-1"))).toList()).all().get(30, TimeUnit.SECONDS);
      try {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.LINGER_MS_CONFIG, 20);
        pp.put(ProducerConfig.BATCH_SIZE_CONFIG, 256 * 1024);
        long start = System.nanoTime();
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(pp, new StringSerializer(), new ByteArraySerializer())) {
          for (int i = 0; i < in.size(); i++) producer.send(new ProducerRecord<>(prefix + Job.INPUT, 0, in.ts()[i], in.keys()[i], in.values()[i]));
          producer.send(new ProducerRecord<>(prefix + Job.INPUT, 0, null, "~close", closer(in)));
          producer.flush();
        }
        log(String.format("%s: produced %,d events to %s in %.1f s", name, in.size(), prefix + Job.INPUT, (System.nanoTime() - start) / 1e9));

        Properties props = Job.props(o, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, dir.toString());
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Static membership, so that close(leaveGroup) takes the member out and the group can be deleted.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), appId);
        AtomicLong running = new AtomicLong();
        Map<String, Long> outputs = new LinkedHashMap<>();
        for (String t : Job.OUTPUTS) outputs.put(t, 0L);
        long seen = 0;
        long end = 0;
        long started = 0;
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaStreams streams = new KafkaStreams(Job.build(o, props, prefix), props);
             KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
          streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) running.compareAndSet(0, System.nanoTime());
          });
          List<TopicPartition> parts = Stream.of(Job.OUTPUTS).map(t -> new TopicPartition(prefix + t, 0)).toList();
          consumer.assign(parts);
          consumer.seekToBeginning(parts);
          started = System.nanoTime();
          streams.start();
          long deadline = System.nanoTime() + timeoutS * 1_000_000_000L;
          long report = System.nanoTime() + 10_000_000_000L;
          while (seen < expected && System.nanoTime() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
              outputs.merge(r.topic().substring(prefix.length()), 1L, Long::sum);
              countEvents(outputs, r.topic().substring(prefix.length()), r.value());
              seen++;
              end = System.nanoTime();
            }
            if (streams.state() == KafkaStreams.State.ERROR) throw new IllegalStateException(name + ": the app failed");
            if (System.nanoTime() > report) {
              report = System.nanoTime() + 10_000_000_000L;
              log(String.format("%s: %,d of %,d output records, %s", name, seen, expected, streams.state()));
            }
          }
          streams.close(new KafkaStreams.CloseOptions().timeout(Duration.ofSeconds(30)).leaveGroup(true));
          streams.cleanUp();
        }
        if (seen < expected) throw new IllegalStateException(String.format("%s: %,d of %,d output records after %d s", name, seen, expected, timeoutS));
        log(String.format("%s: last output %.1f s after start() (RUNNING after %.1f s)", name, (end - started) / 1e9, (running.get() - started) / 1e9));
        return checked(name, in, in.size() / ((end - started) / 1e9), outputs);
      } finally {
        List<String> doomed = new ArrayList<>(topics);
        for (String t : a.listTopics().names().get(30, TimeUnit.SECONDS)) if (t.startsWith(appId)) doomed.add(t);
        a.deleteTopics(doomed).all().get(60, TimeUnit.SECONDS);
        try {
          a.deleteConsumerGroups(List.of(appId)).all().get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
          log(name + ": could not delete the consumer group " + appId + " (" + e.getMessage() + ")");
        }
      }
    } finally {
      deleteTree(dir);
    }
  }

  static long outputRecords(Run run) {
    return Stream.of(Job.OUTPUTS).mapToLong(t -> run.outputs().getOrDefault(t, 0L)).sum();
  }

  static boolean reachable(String hostPort) {
    String[] hp = hostPort.split(":");
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])), 1000);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) return;
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
    }
  }

  static Job.Options options(String variant) {
    return switch (variant) {
      case "tumbling_inmemory" -> new Job.Options(false, false, false, false);
      case "analytics_inmemory" -> new Job.Options(true, false, false, false);
      case "tumbling_rocksdb" -> new Job.Options(false, true, false, false);
      case "analytics_rocksdb" -> new Job.Options(true, true, false, false);
      default -> throw new IllegalArgumentException("unknown variant " + variant);
    };
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new LinkedHashMap<>();
    for (int i = 0; i < argv.length; i++) {
      if (!argv[i].startsWith("--")) throw new IllegalArgumentException("unexpected argument " + argv[i]);
      boolean flag = i + 1 == argv.length || argv[i + 1].startsWith("--");
      args.put(argv[i].substring(2), flag ? "true" : argv[++i]);
    }
    int events = Integer.parseInt(args.getOrDefault("events", "1000000"));
    int keys = Integer.parseInt(args.getOrDefault("keys", "10000"));
    int warmup = Integer.parseInt(args.getOrDefault("warmup", "100000"));
    double dupRate = Double.parseDouble(args.getOrDefault("dup-rate", "0"));
    double lateRate = Double.parseDouble(args.getOrDefault("late-rate", "0"));
    long seed = Long.parseLong(args.getOrDefault("seed", "12"));
    boolean commitsAsIs = args.containsKey("driver-commits-as-is");
    if (args.containsKey("state-dir")) stateRoot = Path.of(args.get("state-dir"));
    String[] variants = args.getOrDefault("variants", "tumbling_inmemory,analytics_inmemory,tumbling_rocksdb,analytics_rocksdb").split(",");
    String broker = args.getOrDefault("broker", "127.0.0.1:9092");
    String[] brokerVariants = args.getOrDefault("broker-variants", "tumbling").split(",");
    int brokerTimeout = Integer.parseInt(args.getOrDefault("broker-timeout", "300"));

    Map<String, Object> out = new LinkedHashMap<>();
    Map<String, Object> outputs = new LinkedHashMap<>();
    // Same number of events per key as the measured stream (100 for 1,000,000 over 10,000 keys).
    int warmKeys = Math.max(1, (int) ((long) keys * warmup / events));
    Input warm = events(warmup, warmKeys, dupRate, lateRate, seed + 1);
    Input input = events(events, keys, dupRate, lateRate, seed);
    log(String.format("%,d events over %,d keys (warm-up: %,d over %,d keys); driver state in %s; JVM %s, heap max %,d MB", events, keys, warmup, warmKeys,
        stateRoot, System.getProperty("java.vm.version"), Runtime.getRuntime().maxMemory() >> 20));
    Map<Boolean, Long> expected = new LinkedHashMap<>();
    for (String v : variants) {
      Job.Options o = options(v.trim());
      if (commitsAsIs) o = new Job.Options(o.analytics(), o.rocksdb(), o.changelogs(), true);
      if (warmup > 0) {
        long t = System.nanoTime();
        driver(v + " warm-up", o, warm);
        log(String.format("%s: warmed up in %.1f s", v, (System.nanoTime() - t) / 1e9));
      }
      System.gc();
      Run run = driver(v, o, input);
      log(String.format("%s: %,.0f events/s, outputs %s", v, run.eventsPerS(), run.outputs()));
      out.put(v.trim(), Math.round(run.eventsPerS()));
      outputs.put(v.trim(), run.outputs());
      expected.put(o.analytics(), outputRecords(run));
    }

    if (broker.equals("none")) {
      out.put("broker", "skipped: --broker none");
    } else if (!reachable(broker)) {
      out.put("broker", "skipped: no Kafka broker at " + broker + " (start it with `npm run services`)");
      log("no Kafka broker at " + broker + ": skipping the broker variants (start it with `npm run services`)");
    } else {
      for (String v : brokerVariants) {
        boolean analytics = v.trim().equals("analytics");
        Job.Options o = new Job.Options(analytics, true, true, true);
        if (!expected.containsKey(analytics)) {
          log(v + "_broker: counting the expected outputs in the driver first");
          expected.put(analytics, outputRecords(driver(v + " count", new Job.Options(analytics, false, false, false), input)));
        }
        System.gc();
        try {
          Run run = broker(broker, v + "_broker", o, input, expected.get(analytics), brokerTimeout);
          log(String.format("%s_broker: %,.0f events/s, outputs %s", v, run.eventsPerS(), run.outputs()));
          out.put(v.trim() + "_broker", Math.round(run.eventsPerS()));
          outputs.put(v.trim() + "_broker", run.outputs());
        } catch (Exception e) {
          log(v + "_broker failed: " + e);
          out.put(v.trim() + "_broker_error", String.valueOf(e.getMessage()));
        }
      }
    }
    out.put("events", events);
    out.put("keys", keys);
    out.put("outputs", outputs);
    out.put("state_dir", stateRoot.toString());
    out.put("jvm", System.getProperty("java.vm.version") + " " + java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments());
    System.out.println(Job.JSON.writeValueAsString(out));
  }

  private Bench() {}
}
