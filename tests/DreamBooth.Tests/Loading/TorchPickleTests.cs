using DreamBooth.Loading;
using DreamBooth.Loading.Pickle;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Loading;

public class TorchPickleTests
{
    static string TinyCkpt => TestPaths.ParityPath("single-file", "tiny-sd1", "tiny-sd1.ckpt");

    static string TinySafetensors => TestPaths.ParityPath("single-file", "tiny-sd1", "tiny-sd1.safetensors");

    [Fact]
    public void TinyCkptEqualsSafetensorsBitForBit()
    {
        using var ckpt = TorchPickle.LoadCheckpoint(TinyCkpt);
        var st = Safetensors.Load(TinySafetensors);
        try
        {
            Assert.Equal(600, ckpt.StateDict.Count);
            Assert.Equal(st.Keys.OrderBy(k => k, StringComparer.Ordinal), ckpt.StateDict.Keys.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (k, v) in st)
            {
                var c = ckpt.StateDict[k];
                Assert.Equal(v.dtype, c.dtype);
                Assert.Equal(v.shape, c.shape);
                Assert.True(v.contiguous().bytes.SequenceEqual(c.contiguous().bytes), k);
            }
            Assert.Empty(ckpt.SkippedEntries);
            Assert.Null(ckpt.GlobalStep);
        }
        finally
        {
            foreach (var t in st.Values) t.Dispose();
        }
    }

    [Fact]
    public void MatchesPyBridgeUnpickler()
    {
        using var ckpt = TorchPickle.LoadCheckpoint(TinyCkpt);
        var table = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(TinyCkpt);
        var inner = (System.Collections.Hashtable)table["state_dict"]!;
        Assert.Equal(inner.Count, ckpt.StateDict.Count);
        foreach (System.Collections.DictionaryEntry e in inner)
        {
            var theirs = (torch.Tensor)e.Value!;
            var ours = ckpt.StateDict[(string)e.Key];
            Assert.True(theirs.contiguous().bytes.SequenceEqual(ours.contiguous().bytes), (string)e.Key);
        }
    }

    [Fact]
    public void LoadStateDictAcceptsBareDictAndWrapper()
    {
        using var dir = TestPaths.NewTempDir();
        var bare = dir.File("bare.bin");
        var b = new PickleBuilder();
        b.Proto().EmptyDict().Mark()
            .Str("w").Tensor("0", "FloatStorage", 0, [2, 3], [3, 1])
            .Str("b").Tensor("1", "LongStorage", 0, [4], [1])
            .SetItems().Stop();
        TorchZip.Write(bare, b.Bytes(), ("0", Floats(Enumerable.Range(0, 6).Select(i => (float)i))), ("1", Longs(10, 11, 12, 13)));
        var sd = TorchPickle.LoadStateDict(bare);
        Assert.Equal(new long[] { 2, 3 }, sd["w"].shape);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, sd["w"].data<float>().ToArray());
        Assert.Equal(new long[] { 10, 11, 12, 13 }, sd["b"].data<long>().ToArray());
    }

    [Fact]
    public void OffsetsStridesAndSharedStoragesAreRight()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("views.ckpt");
        var b = new PickleBuilder();
        // {"state_dict": {"a": storage0[0:6] as 2x3, "t": a transposed (stride 1,3), "s": storage0[4:8], "h": f16},
        //  "global_step": 1234, "epoch": 3}
        b.Proto().EmptyDict().Mark()
            .Str("state_dict").EmptyDict().Mark()
            .Str("a").Tensor("7", "FloatStorage", 0, [2, 3], [3, 1], numel: 10)
            .Str("t").Tensor("7", "FloatStorage", 0, [3, 2], [1, 3], numel: 10)
            .Str("s").Tensor("7", "FloatStorage", 4, [4], [1], numel: 10)
            .Str("h").Parameter("9", "HalfStorage", 1, [2], [1], numel: 3)
            .SetItems()
            .Str("global_step").Int(1234)
            .Str("epoch").Int(3)
            .SetItems().Stop();
        var halves = new byte[6];
        BitConverter.TryWriteBytes(halves.AsSpan(0), (Half)1.5f);
        BitConverter.TryWriteBytes(halves.AsSpan(2), (Half)(-2f));
        BitConverter.TryWriteBytes(halves.AsSpan(4), (Half)0.25f);
        TorchZip.Write(path, b.Bytes(), ("7", Floats(Enumerable.Range(0, 10).Select(i => (float)i))), ("9", halves));
        using var ckpt = TorchPickle.LoadCheckpoint(path);
        var sd = ckpt.StateDict;
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, sd["a"].contiguous().data<float>().ToArray());
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, sd["t"].contiguous().data<float>().ToArray());
        Assert.True(sd["t"].eq(sd["a"].t()).all().item<bool>());
        Assert.Equal(new float[] { 4, 5, 6, 7 }, sd["s"].data<float>().ToArray());
        Assert.Equal(torch.ScalarType.Float16, sd["h"].dtype);
        Assert.Equal(new float[] { -2f, 0.25f }, sd["h"].to(torch.ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(1234L, ckpt.GlobalStep);
        Assert.Equal(3L, ckpt.TopLevel["epoch"]);
    }

    [Fact]
    public void RefusesTensorBeyondItsStorage()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("oob.ckpt");
        var b = new PickleBuilder();
        b.Proto().EmptyDict().Str("x").Tensor("0", "FloatStorage", 2, [3, 3], [3, 1], numel: 10).SetItem().Stop();
        TorchZip.Write(path, b.Bytes(), ("0", Floats(Enumerable.Range(0, 10).Select(i => (float)i))));
        var e = Assert.Throws<ModelLoadException>(() => TorchPickle.LoadStateDict(path));
        Assert.Contains("storage '0'", e.Message);
    }

    [Fact]
    public void RefusesStorageLargerThanItsEntry()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("short.ckpt");
        var b = new PickleBuilder();
        b.Proto().EmptyDict().Str("x").Tensor("0", "FloatStorage", 0, [1000000], [1], numel: 1000000).SetItem().Stop();
        TorchZip.Write(path, b.Bytes(), ("0", Floats([1f, 2f])));
        var e = Assert.Throws<ModelLoadException>(() => TorchPickle.LoadStateDict(path));
        Assert.Contains("needs", e.Message);
    }

    [Theory]
    [InlineData("posix", "system")]
    [InlineData("os", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("builtins", "exec")]
    [InlineData("subprocess", "Popen")]
    [InlineData("builtins", "getattr")]
    [InlineData("torch", "load")]
    public void RefusesEvilGlobalWithoutExecutingIt(string module, string name)
    {
        using var dir = TestPaths.NewTempDir();
        var marker = dir.File("pwned");
        var path = dir.File("evil.ckpt");
        var b = new PickleBuilder();
        // {"state_dict": <module.name>("touch <marker>")}
        b.Proto().EmptyDict().Str("state_dict").Global(module, name).Str($"touch {marker}").Tuple1().Reduce().SetItem().Stop();
        TorchZip.Write(path, b.Bytes());
        var e = Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(path));
        Assert.Contains($"'{module}.{name}'", e.Message);
        Assert.Contains(path, e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void RefusesEvilStackGlobal()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("evil4.pt");
        var b = new PickleBuilder();
        b.Proto(4).Str("os").Str("system").Op(0x93).Str("echo hi").Tuple1().Reduce().Stop();
        TorchZip.Write(path, b.Bytes());
        var e = Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(path));
        Assert.Contains("'os.system'", e.Message);
    }

    [Fact]
    public void RefusesNestedReduceOnNonAllowlistedCallable()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("nested.ckpt");
        var b = new PickleBuilder();
        // OrderedDict() is allowed; calling its *result* (a dict) is not: REDUCE(REDUCE(OrderedDict, ()), ("x",)).
        b.Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Str("x").Tuple1().Reduce().Stop();
        TorchZip.Write(path, b.Bytes());
        var e = Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(path));
        Assert.Contains("REDUCE", e.Message);
        Assert.Contains("Nothing was executed", e.Message);
    }

    [Fact]
    public void RefusesBuildOnUnknownObjectAndInst()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("build.ckpt");
        var b = new PickleBuilder();
        b.Proto().EmptyList().EmptyDict().Op((byte)'b').Stop();
        TorchZip.Write(path, b.Bytes());
        Assert.Contains("BUILD", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(path)).Message);

        var b2 = new PickleBuilder();
        b2.Proto().Mark().Str("id").Raw("ios\nsystem\n"u8.ToArray()).Stop();
        TorchZip.Write(path, b2.Bytes());
        Assert.Contains("'os.system'", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(path)).Message);
    }

    [Fact]
    public void LightningCallbacksAndNumpyScalarsAreInertPlaceholders()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("lightning.ckpt");
        var b = new PickleBuilder();
        // {"state_dict": {"w": tensor}, "global_step": numpy.int64(470000),
        //  "callbacks": {ModelCheckpoint: <object with state {"monitor": None}>}}
        b.Proto().EmptyDict().Mark()
            .Str("state_dict").EmptyDict().Str("w").Tensor("0", "FloatStorage", 0, [2], [1]).SetItem()
            .Str("global_step").Global("numpy.core.multiarray", "scalar")
                .Global("numpy", "dtype").Str("i8").False().True().Tuple3().Reduce()
                .Mark().Int(3).Str("<").None().None().None().Int(-1).Int(-1).Int(0).Tuple().Op((byte)'b')
                .Global("_codecs", "encode").Str("\u00f0+\u0007\0\0\0\0\0").Str("latin1").Tuple2().Reduce()
                .Tuple2().Reduce()
            .Str("callbacks").EmptyDict()
                .Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")
                .Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").EmptyTuple().Op(0x81)
                .EmptyDict().Str("monitor").None().SetItem().Op((byte)'b')
                .SetItem()
            .SetItems().Stop();
        TorchZip.Write(path, b.Bytes(), ("0", Floats([1f, 2f])));
        using var ckpt = TorchPickle.LoadCheckpoint(path);
        Assert.Equal(470000L, ckpt.GlobalStep);
        Assert.Single(ckpt.StateDict);
        var root = Assert.IsType<PickleDict>(ckpt.Root);
        var callbacks = Assert.IsType<PickleDict>(root["callbacks"]);
        var obj = Assert.IsType<PickleObject>(callbacks.Items.Single().Value);
        Assert.Equal("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", obj.ClassName);
    }

    [Fact]
    public void RefusesNonCheckpointsClearly()
    {
        using var dir = TestPaths.NewTempDir();
        var p1 = dir.File("text.ckpt");
        File.WriteAllText(p1, "hello, this is not a checkpoint");
        Assert.Contains("not a PyTorch checkpoint", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(p1)).Message);
        var p2 = dir.File("empty.ckpt");
        File.WriteAllBytes(p2, []);
        Assert.Contains("empty", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(p2)).Message);
        var p3 = dir.File("other.zip");
        using (var z = new System.IO.Compression.ZipArchive(File.Create(p3), System.IO.Compression.ZipArchiveMode.Create))
            z.CreateEntry("hello.txt");
        Assert.Contains("data.pkl", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(p3)).Message);
        Assert.Contains("not found", Assert.Throws<ModelLoadException>(() => TorchPickle.LoadCheckpoint(dir.File("missing.ckpt"))).Message);
    }

    [Fact]
    public void ReadsLegacyTorchFormat()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("legacy.pt");
        using var ms = new MemoryStream();
        void Pickle(PickleBuilder pb) => ms.Write(pb.Bytes());
        Pickle(new PickleBuilder().Proto().Raw([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]).Stop());
        Pickle(new PickleBuilder().Proto().Int(1001).Stop());
        Pickle(new PickleBuilder().Proto().EmptyDict().Str("little_endian").True().SetItem().Stop());
        Pickle(new PickleBuilder().Proto().EmptyDict().Str("w").Global("torch._utils", "_rebuild_tensor_v2")
            .Mark().Mark().Str("storage").Global("torch", "FloatStorage").Str("94").Str("cpu").Int(3).None().Tuple().Op((byte)'Q')
            .Int(1).Int(2).Tuple1().Int(1).Tuple1().False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce()
            .SetItem().Stop());
        Pickle(new PickleBuilder().Proto().EmptyList().Str("94").Op((byte)'a').Stop());
        ms.Write(BitConverter.GetBytes(3L));
        ms.Write(Floats([7f, 8f, 9f]));
        File.WriteAllBytes(path, ms.ToArray());
        var sd = TorchPickle.LoadStateDict(path);
        Assert.Equal(new float[] { 8f, 9f }, sd["w"].data<float>().ToArray());
    }

    internal static byte[] Floats(IEnumerable<float> v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    internal static byte[] Longs(params long[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();
}
