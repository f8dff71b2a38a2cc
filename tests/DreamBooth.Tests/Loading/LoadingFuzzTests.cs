using DreamBooth.Loading;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Sampling;
using DreamBooth.Loading.Pickle;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Loading;

/// <summary>
/// Seeded fuzzing of every file reader: truncated and byte-mutated variants of a small safetensors
/// file, a small torch zip checkpoint (whole file and pickle alone) and config JSON files. Each case
/// must end in a valid load or a <see cref="ModelLoadException"/>: never another exception type, never
/// a hang (per-case timeout) and never a large managed allocation.
/// </summary>
public class LoadingFuzzTests(ITestOutputHelper output)
{
    const int Seed = 20261125;
    static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);
    const long MaxManagedAllocation = 64L << 20;

    sealed class Tally
    {
        public int Loaded;
        public int Refused;
        public readonly List<string> Failures = new();

        public int Total => Loaded + Refused + Failures.Count;
    }

    static void RunCase(Tally tally, string name, Action load)
    {
        long allocated = 0;
        var task = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                load();
                return (Exception?)null;
            }
            catch (Exception e)
            {
                return e;
            }
            finally
            {
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        });
        if (!task.Wait(CaseTimeout))
        {
            tally.Failures.Add($"{name}: did not finish within {CaseTimeout.TotalSeconds} s (hang)");
            return;
        }
        if (allocated > MaxManagedAllocation)
            tally.Failures.Add($"{name}: allocated {allocated} bytes");
        switch (task.Result)
        {
            case null: tally.Loaded++; break;
            case ModelLoadException e when e.Message.Length > 0 && e.FilePath.Length > 0: tally.Refused++; break;
            case var e: tally.Failures.Add($"{name}: {e!.GetType().Name}: {e.Message}"); break;
        }
    }

    static IEnumerable<(string Name, byte[] Bytes)> Variants(byte[] original, Random rng, int truncations, int mutations, int headerBytes)
    {
        var lengths = new SortedSet<int> { 0, 1, original.Length - 1 };
        while (lengths.Count < Math.Min(truncations, original.Length)) lengths.Add(rng.Next(original.Length));
        foreach (var n in lengths) yield return ($"truncated to {n}", original[..n]);
        for (int i = 0; i < mutations; i++)
        {
            var b = (byte[])original.Clone();
            int edits = 1 + rng.Next(4);
            bool inHeader = i % 2 == 0 && headerBytes > 0;
            for (int e = 0; e < edits; e++)
            {
                int pos = inHeader ? rng.Next(Math.Min(headerBytes, b.Length)) : rng.Next(b.Length);
                b[pos] = (i % 3) switch
                {
                    0 => (byte)rng.Next(256),
                    1 => (byte)(b[pos] ^ (1 << rng.Next(8))),
                    _ => "0123456789\"{}[],:.-"u8[rng.Next(19)],
                };
            }
            yield return ($"mutation {i} ({edits} bytes{(inHeader ? ", header" : "")})", b);
        }
    }

    static void DisposeAll(IEnumerable<torch.Tensor> ts)
    {
        foreach (var t in ts) t.Dispose();
    }

    void Report(string what, Tally t)
    {
        output.WriteLine($"{what}: {t.Total} cases, {t.Loaded} loaded, {t.Refused} refused with ModelLoadException, {t.Failures.Count} failures");
        foreach (var f in t.Failures.Take(20)) output.WriteLine("  " + f);
        Assert.True(t.Failures.Count == 0, $"{what}: {t.Failures.Count} failures, first: {t.Failures.FirstOrDefault()}");
    }

    [Fact]
    public void SafetensorsFuzz()
    {
        using var dir = TestPaths.NewTempDir();
        var basePath = dir.File("base.safetensors");
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["a.weight"] = torch.arange(12, dtype: torch.ScalarType.Float32).reshape(3, 4),
            ["b.half"] = torch.ones(5, dtype: torch.ScalarType.Float16),
            ["c.long"] = torch.arange(4).reshape(2, 2),
            ["d.scalar"] = torch.tensor(2.5f).to(torch.ScalarType.BFloat16),
        };
        Safetensors.Save(basePath, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var original = File.ReadAllBytes(basePath);
        int headerBytes = 8 + (int)BitConverter.ToUInt64(original, 0);
        var tally = new Tally();
        var rng = new Random(Seed);
        int i = 0;
        foreach (var (name, bytes) in Variants(original, rng, 200, 400, headerBytes))
        {
            var p = dir.File($"v{i++}.safetensors");
            File.WriteAllBytes(p, bytes);
            RunCase(tally, name, () => DisposeAll(Safetensors.Load(p).Values));
            File.Delete(p);
        }
        Report("safetensors", tally);
        Assert.True(tally.Loaded > 0 && tally.Refused > 0);
        DisposeAll(tensors.Values);
    }

    static byte[] SmallPickle()
    {
        var b = new PickleBuilder();
        b.Proto().EmptyDict().Mark()
            .Str("state_dict").EmptyDict().Mark()
            .Str("w").Tensor("0", "FloatStorage", 0, [2, 3], [3, 1], numel: 8)
            .Str("wt").Tensor("0", "FloatStorage", 2, [3, 2], [1, 3], numel: 8)
            .Str("h").Parameter("1", "HalfStorage", 0, [4], [1])
            .Str("n").Tensor("2", "LongStorage", 0, [], [])
            .SetItems()
            .Str("global_step").Int(875000)
            .Str("callbacks").EmptyList().Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").EmptyTuple().Reduce().Op((byte)'a')
            .SetItems().Stop();
        return b.Bytes();
    }

    static readonly (string, byte[])[] SmallStorages =
    [
        ("0", TorchPickleTests.Floats(Enumerable.Range(0, 8).Select(i => i * 0.5f))),
        ("1", new byte[8]),
        ("2", TorchPickleTests.Longs(42)),
    ];

    [Fact]
    public void TorchCheckpointFuzz()
    {
        using var dir = TestPaths.NewTempDir();
        var basePath = dir.File("base.ckpt");
        var pickle = SmallPickle();
        TorchZip.Write(basePath, pickle, SmallStorages);
        using (var ok = TorchPickle.LoadCheckpoint(basePath))
        {
            Assert.Equal(4, ok.StateDict.Count);
            Assert.Equal(875000L, ok.GlobalStep);
        }
        var original = File.ReadAllBytes(basePath);
        var rng = new Random(Seed + 1);

        var whole = new Tally();
        int i = 0;
        foreach (var (name, bytes) in Variants(original, rng, 150, 250, 0))
        {
            var p = dir.File($"z{i++}.ckpt");
            File.WriteAllBytes(p, bytes);
            RunCase(whole, name, () => TorchPickle.LoadCheckpoint(p).Dispose());
            File.Delete(p);
        }
        Report("torch zip checkpoint (whole file)", whole);

        // Mutate the pickle itself and re-zip it (valid CRCs), so the unpickler sees the damage.
        var pk = new Tally();
        foreach (var (name, bytes) in Variants(pickle, rng, 150, 450, pickle.Length))
        {
            var p = dir.File($"p{i++}.ckpt");
            TorchZip.Write(p, bytes, SmallStorages);
            RunCase(pk, "pickle " + name, () => TorchPickle.LoadCheckpoint(p).Dispose());
            File.Delete(p);
        }
        // Random opcode soup: every opcode byte with random arguments.
        for (int c = 0; c < 200; c++)
        {
            var soup = new byte[2 + rng.Next(60)];
            rng.NextBytes(soup);
            soup[0] = 0x80;
            soup[1] = 2;
            var p = dir.File($"s{i++}.ckpt");
            TorchZip.Write(p, soup, SmallStorages);
            RunCase(pk, $"opcode soup {c}", () => TorchPickle.LoadCheckpoint(p).Dispose());
            File.Delete(p);
        }
        Report("torch pickle (data.pkl mutated)", pk);
        Assert.True(pk.Refused > 0);
    }

    [Fact]
    public void ConfigJsonFuzz()
    {
        // the typed readers the loader uses: config.json -> record -> Validate -> model on the meta device
        using var dir = TestPaths.NewTempDir();
        var tally = new Tally();
        var rng = new Random(Seed + 2);
        int i = 0;
        var readers = new (string Folder, string File, Action<string> Load)[]
        {
            ("unet", "config.json", d => { var (p, c) = ComponentLoader.ReadConfig<UNet2DConditionConfig>(d); c.Validate(p); new UNet2DConditionModel(c, ModelPlacement.Meta).Dispose(); }),
            ("vae", "config.json", d => { var (p, c) = ComponentLoader.ReadConfig<AutoencoderKLConfig>(d); c.Validate(p); new AutoencoderKL(c, ModelPlacement.Meta).Dispose(); }),
            ("text_encoder", "config.json", d => { var (p, c) = ComponentLoader.ReadConfig<ClipTextConfig>(d); c.Validate(p); new ClipTextModel(c, ModelPlacement.Meta).Dispose(); }),
            ("scheduler", "scheduler_config.json", d => { var c = SchedulerConfig.Load(Path.Combine(d, "scheduler_config.json")); using var s = SamplerFactory.Create(Sampler.EulerAncestral, c); using var r = s.Start(20); }),
        };
        foreach (var (folder, file, load) in readers)
        {
            var src = TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers", folder, file);
            var ok = Path.Combine(dir.Path, $"ok-{folder}");
            Directory.CreateDirectory(ok);
            File.Copy(src, Path.Combine(ok, file));
            load(ok); // the original loads
            var original = File.ReadAllBytes(src);
            foreach (var (name, bytes) in Variants(original, rng, 60, 90, original.Length))
            {
                var d = Path.Combine(dir.Path, $"c{i++}");
                Directory.CreateDirectory(d);
                File.WriteAllBytes(Path.Combine(d, file), bytes);
                RunCase(tally, $"{folder}/{file} {name}", () => load(d));
                Directory.Delete(d, true);
            }
        }
        Report("config json (typed readers)", tally);
        var bad = Path.Combine(dir.Path, "null-field");
        Directory.CreateDirectory(bad);
        File.WriteAllText(Path.Combine(bad, "config.json"), "{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": null}");
        var e = Assert.Throws<ModelLoadException>(() => readers[0].Load(bad));
        Assert.Contains("block_out_channels is missing or null", e.Message);
        File.WriteAllText(Path.Combine(bad, "config.json"), "{\"_class_name\": \"UNet2DConditionModel\", \"layers_per_block\": 1000000000}");
        e = Assert.Throws<ModelLoadException>(() => readers[0].Load(bad));
        Assert.Contains("layers_per_block 1000000000 is too large", e.Message);
    }

    [Fact]
    public void SingleFileReadOfDamagedTinyCheckpointsFailsCleanly()
    {
        using var dir = TestPaths.NewTempDir();
        var options = new SingleFileOptions { NormNumGroups = 4, AttentionHeadDim = [2], TextEncoderAttentionHeads = 4 };
        var tally = new Tally();
        var rng = new Random(Seed + 3);
        int i = 0;
        foreach (var file in new[] { "tiny-sd1.safetensors", "tiny-sd1.ckpt" })
        {
            var original = File.ReadAllBytes(TestPaths.ParityPath("single-file", "tiny-sd1", file));
            foreach (var (name, bytes) in Variants(original, rng, 8, 8, file.EndsWith(".ckpt") ? 0 : 8 + (int)BitConverter.ToUInt64(original, 0)))
            {
                var p = dir.File($"t{i++}{Path.GetExtension(file)}");
                File.WriteAllBytes(p, bytes);
                RunCase(tally, $"{file} {name}", () => SingleFileCheckpoint.Read(p, options).Dispose());
                File.Delete(p);
            }
        }
        Report("single-file read (tiny, damaged)", tally);
    }

    [Fact]
    public void SingleFilePlanFuzzOnDamagedKeyListings()
    {
        var original = SingleFileTests.ReadListing(TestPaths.ParityPath("single-file", "full", "sd21.keys.tsv"));
        var keys = original.Keys.ToList();
        var rng = new Random(Seed + 4);
        var tally = new Tally();
        for (int c = 0; c < 250; c++)
        {
            var shapes = new Dictionary<string, long[]>(original, StringComparer.Ordinal);
            int edits = 1 + rng.Next(3);
            var what = new List<string>();
            for (int e = 0; e < edits; e++)
            {
                var k = keys[rng.Next(keys.Count)];
                if (!shapes.TryGetValue(k, out var s)) continue;
                switch (rng.Next(5))
                {
                    case 0: shapes.Remove(k); what.Add($"removed {k}"); break;
                    case 1: shapes[k] = s.Length > 0 ? s[..^1] : [3]; what.Add($"rank-1 {k}"); break;
                    case 2: shapes[k] = [.. s, 1]; what.Add($"rank+1 {k}"); break;
                    case 3: shapes[k] = s.Select(d => rng.Next(2) == 0 ? d : (long)rng.Next(0, 7)).ToArray(); what.Add($"dims {k}"); break;
                    default:
                        var chars = k.ToCharArray();
                        chars[rng.Next(chars.Length)] = "0123456789._abq"[rng.Next(15)];
                        shapes.Remove(k);
                        shapes[new string(chars)] = s;
                        what.Add($"renamed {k}");
                        break;
                }
            }
            var opts = new SingleFileOptions { PredictionType = PredictionType.VPrediction };
            RunCase(tally, $"listing case {c} ({string.Join("; ", what)})", () => SingleFileCheckpoint.Plan(shapes, null, opts, "fuzz.safetensors"));
        }
        Report("single-file plan (damaged sd21 listings)", tally);
    }
}
