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

    /// <summary>The same object pickled by CPython 3 with protocols 0-5 (pickle.dumps(obj, protocol=p).hex()).</summary>
    [Theory]
    [InlineData(0, "286470300a56610a70310a286c70320a49310a6146322e350a615678e90a70330a614e614930310a612849310a49320a7470340a61492d3330300a614937303030300a617356620a70350a63636f6c6c656374696f6e730a4f726465726564446963740a70360a28745270370a56630a70380a635f636f646563730a656e636f64650a70390a28565c7530303030010a7031300a566c6174696e310a7031310a747031320a527031330a7373566269670a7031340a4c313138303539313632303731373431313330333432344c0a73566e65670a7031350a492d350a7356730a7031360a635f5f6275696c74696e5f5f0a7365740a7031370a28286c7031380a566b0a7031390a61747032300a527032310a732e")]
    [InlineData(1, "7d71002858010000006171015d7102284b01474004000000000000580300000078c3a971034e4930310a284b014b027471044ad4feffff4a7011010065580100000062710563636f6c6c656374696f6e730a4f726465726564446963740a7106295271075801000000637108635f636f646563730a656e636f64650a71092858020000000001710a58060000006c6174696e31710b74710c52710d735803000000626967710e4c313138303539313632303731373431313330333432344c0a58030000006e6567710f4afbffffff5801000000737110635f5f6275696c74696e5f5f0a7365740a7111285d711258010000006b711361747114527115752e")]
    [InlineData(2, "80027d71002858010000006171015d7102284b01474004000000000000580300000078c3a971034e884b014b028671044ad4feffff4a7011010065580100000062710563636f6c6c656374696f6e730a4f726465726564446963740a7106295271075801000000637108635f636f646563730a656e636f64650a710958020000000001710a58060000006c6174696e31710b86710c52710d735803000000626967710e8a0900000000000000004058030000006e6567710f4afbffffff5801000000737110635f5f6275696c74696e5f5f0a7365740a71115d711258010000006b711361857114527115752e")]
    [InlineData(3, "80037d71002858010000006171015d7102284b01474004000000000000580300000078c3a971034e884b014b028671044ad4feffff4a7011010065580100000062710563636f6c6c656374696f6e730a4f726465726564446963740a7106295271075801000000637108430200017109735803000000626967710a8a0900000000000000004058030000006e6567710b4afbffffff580100000073710c636275696c74696e730a7365740a710d5d710e58010000006b710f61857110527111752e")]
    [InlineData(4, "80049587000000000000007d94288c0161945d94284b014740040000000000008c0378c3a9944e884b014b0286944ad4feffff4a70110100658c0162948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c0163944302000194738c03626967948a090000000000000000408c036e6567944afbffffff8c0173948f94288c016b9490752e")]
    [InlineData(5, "80059587000000000000007d94288c0161945d94284b014740040000000000008c0378c3a9944e884b014b0286944ad4feffff4a70110100658c0162948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c0163944302000194738c03626967948a090000000000000000408c036e6567944afbffffff8c0173948f94288c016b9490752e")]
    public void ReadsCPythonPicklesOfAllProtocols(int protocol, string hex)
    {
        var bytes = Convert.FromHexString(hex);
        var root = Assert.IsType<PickleDict>(SafeUnpickler.Load(bytes, $"protocol{protocol}.pkl",
            (_, _, _, _) => throw new InvalidOperationException("no storages here")));
        var a = Assert.IsType<PickleList>(root["a"]);
        Assert.Equal(1L, a[0]);
        Assert.Equal(2.5, a[1]);
        Assert.Equal("x\u00e9", a[2]);
        Assert.Null(a[3]);
        Assert.Equal(true, a[4]);
        var t = Assert.IsType<PickleTuple>(a[5]);
        Assert.Equal(new object?[] { 1L, 2L }, t.ToArray());
        Assert.Equal(-300L, a[6]);
        Assert.Equal(70000L, a[7]);
        var b = Assert.IsType<PickleDict>(root["b"]);
        Assert.Equal(new byte[] { 0, 1 }, Assert.IsType<byte[]>(b["c"]));
        Assert.Equal(System.Numerics.BigInteger.Pow(2, 70), root["big"]);
        Assert.Equal(-5L, root["neg"]);
        Assert.Equal("k", Assert.IsType<PickleList>(root["s"]).Single());
    }

    [Fact]
    public void NonTensorStateDictEntriesAreSkippedAndNamed()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("mixed.pt");
        var b = new PickleBuilder();
        b.Proto().EmptyDict().Mark().Str("w").Tensor("0", "FloatStorage", 0, [1], [1]).Str("note").Str("hello").SetItems().Stop();
        TorchZip.Write(path, b.Bytes(), ("0", Floats([3f])));
        using var ckpt = TorchPickle.LoadCheckpoint(path);
        Assert.Single(ckpt.StateDict);
        Assert.Equal(["note"], ckpt.SkippedEntries);
    }

    internal static byte[] Floats(IEnumerable<float> v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    internal static byte[] Longs(params long[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();
}
