package io.github.raytrading.stream;

import java.util.Arrays;
import java.util.Comparator;
import org.apache.spark.Partition;
import org.apache.spark.rdd.PartitionCoalescer;
import org.apache.spark.rdd.PartitionGroup;
import org.apache.spark.rdd.RDD;
import scala.Option;

/**
 * Groups a micro-batch's Kafka partitions into at most one task per executor core, each with about as many records
 * as the others: the largest offset ranges first, each to the group with the fewest records so far.
 *
 * <p>Spark's own coalescing groups neighbouring partitions, whatever they hold: the job reads four topics of several
 * partitions each, and when one topic carries most of a batch (quotes, twenty to a trade on a real feed; a backlog
 * of trades) one task got most of the records while the other core waited. The sizes come from the Kafka source's
 * offset ranges (read by reflection: the Kafka connector is not on the compile classpath); a partition whose size
 * cannot be read counts as one record.
 */
// scala.Serializable: Spark's check for a coalescer that can travel is against Scala's marker (2.12)
public final class BalancedCoalescer implements PartitionCoalescer, scala.Serializable {
  private static final long serialVersionUID = 1L;

  @Override
  public PartitionGroup[] coalesce(int maxPartitions, RDD<?> parent) {
    Partition[] partitions = parent.partitions();
    long[] sizes = new long[partitions.length];
    int nonEmpty = 0;
    for (int i = 0; i < partitions.length; i++) {
      sizes[i] = records(partitions[i]);
      if (sizes[i] > 0) {
        nonEmpty++;
      }
    }
    int[] group = assign(sizes, maxPartitions);
    int count = Math.max(1, Math.min(maxPartitions, nonEmpty));
    PartitionGroup[] groups = new PartitionGroup[count];
    for (int g = 0; g < count; g++) {
      groups[g] = new PartitionGroup(Option.empty());
    }
    for (int i = 0; i < partitions.length; i++) {
      groups[group[i]].partitions().$plus$eq(partitions[i]);
    }
    return groups;
  }

  /** The group (0 .. min(maxGroups, non-empty sizes) - 1, at least one group) of each size: the largest first, each
   * to the group with the least so far (ties: the one with fewer members, then the first). */
  public static int[] assign(long[] sizes, int maxGroups) {
    int nonEmpty = 0;
    for (long size : sizes) {
      if (size > 0) {
        nonEmpty++;
      }
    }
    int count = Math.max(1, Math.min(maxGroups, nonEmpty));
    long[] load = new long[count];
    int[] members = new int[count];
    int[] group = new int[sizes.length];
    Integer[] order = new Integer[sizes.length];
    Arrays.setAll(order, i -> i);
    Arrays.sort(order, Comparator.comparingLong((Integer i) -> -sizes[i]).thenComparingInt(i -> i));
    for (int i : order) {
      int lightest = 0;
      for (int g = 1; g < count; g++) {
        if (load[g] < load[lightest] || load[g] == load[lightest] && members[g] < members[lightest]) {
          lightest = g;
        }
      }
      group[i] = lightest;
      load[lightest] += sizes[i];
      members[lightest]++;
    }
    return group;
  }

  /** The records of a Kafka source partition (the sum of its offset ranges); 1 when that cannot be read. */
  static long records(Partition partition) {
    try {
      Object inputs = partition.getClass().getMethod("inputPartitions").invoke(partition);
      scala.collection.Iterator<?> it = ((scala.collection.Iterable<?>) inputs).iterator();
      long total = 0;
      while (it.hasNext()) {
        Object input = it.next();
        Object range = input.getClass().getMethod("offsetRange").invoke(input);
        total += ((Number) range.getClass().getMethod("size").invoke(range)).longValue();
      }
      return total;
    } catch (ReflectiveOperationException | RuntimeException e) {
      return 1;
    }
  }
}
