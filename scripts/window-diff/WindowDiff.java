import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.state.BuiltInDslStoreSuppliers;

/**
 * Kafka Streams' side of scripts/window-diff.ts. Reads cases, one a line: "sliding|session
 * <timeDifference or gap ms> <grace ms> <ts>...", the records' values being their indexes; prints
 * a line per case with, for each record in turn, what the aggregation forwarded ("start:end:ids" or
 * "start:end:null" for a tombstone, space-separated), records separated by "|". Caching is off, so
 * every update is forwarded. STORE=rocksdb uses the default persistent stores instead of in-memory.
 */
public final class WindowDiff {
  public static void main(String[] args) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out)));
    String stateDir = Files.createTempDirectory("window-diff").toString();
    String line;
    int n = 0;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      String[] parts = line.trim().split(" ");
      long size = Long.parseLong(parts[1]);
      long grace = Long.parseLong(parts[2]);
      List<String> forwarded = new ArrayList<>();
      StreamsBuilder builder = new StreamsBuilder();
      KGroupedStream<String, String> grouped = builder.stream("in", Consumed.with(Serdes.String(), Serdes.String())).groupByKey();
      if (parts[0].equals("sliding")) {
        grouped
            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(size), Duration.ofMillis(grace)))
            .aggregate(() -> "", (k, v, agg) -> agg.isEmpty() ? v : agg + "," + v, Materialized.with(Serdes.String(), Serdes.String()))
            .toStream()
            .foreach((k, v) -> forwarded.add(k.window().start() + ":" + k.window().end() + ":" + v));
      } else {
        grouped
            .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(size), Duration.ofMillis(grace)))
            .aggregate(
                () -> "",
                (k, v, agg) -> agg.isEmpty() ? v : agg + "," + v,
                (k, a, b) -> a.isEmpty() ? b : b.isEmpty() ? a : a + "," + b,
                Materialized.with(Serdes.String(), Serdes.String()))
            .toStream()
            .foreach((k, v) -> forwarded.add(k.window().start() + ":" + k.window().end() + ":" + v));
      }
      Properties props = new Properties();
      props.put(StreamsConfig.APPLICATION_ID_CONFIG, "window-diff-" + n++);
      props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
      props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
      props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
      if (!"rocksdb".equals(System.getenv("STORE"))) {
        props.put(StreamsConfig.DSL_STORE_SUPPLIERS_CLASS_CONFIG, BuiltInDslStoreSuppliers.InMemoryDslStoreSuppliers.class);
      }
      StringBuilder result = new StringBuilder();
      try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), props)) {
        TestInputTopic<String, String> input = driver.createInputTopic("in", new StringSerializer(), new StringSerializer());
        for (int i = 3; i < parts.length; i++) {
          forwarded.clear();
          input.pipeInput("k", Integer.toString(i - 3), Long.parseLong(parts[i]));
          result.append(String.join(" ", forwarded)).append("|");
        }
      }
      out.println(result);
    }
    out.flush();
  }
}
