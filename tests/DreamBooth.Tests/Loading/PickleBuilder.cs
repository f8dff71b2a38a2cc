using System.IO.Compression;
using System.Text;

namespace DreamBooth.Tests.Loading;

/// <summary>Writes pickle opcodes by hand (for crafted and hostile test pickles).</summary>
internal sealed class PickleBuilder
{
    readonly MemoryStream ms = new();

    public byte[] Bytes() => ms.ToArray();

    public PickleBuilder Op(byte op) { ms.WriteByte(op); return this; }

    public PickleBuilder Raw(byte[] b) { ms.Write(b); return this; }

    public PickleBuilder Proto(byte v = 2) => Op(0x80).Op(v);

    public PickleBuilder Stop() => Op((byte)'.');

    public PickleBuilder Mark() => Op((byte)'(');

    public PickleBuilder EmptyDict() => Op((byte)'}');

    public PickleBuilder EmptyList() => Op((byte)']');

    public PickleBuilder EmptyTuple() => Op((byte)')');

    public PickleBuilder Tuple() => Op((byte)'t');

    public PickleBuilder Tuple1() => Op(0x85);

    public PickleBuilder Tuple2() => Op(0x86);

    public PickleBuilder Tuple3() => Op(0x87);

    public PickleBuilder SetItem() => Op((byte)'s');

    public PickleBuilder SetItems() => Op((byte)'u');

    public PickleBuilder Reduce() => Op((byte)'R');

    public PickleBuilder None() => Op((byte)'N');

    public PickleBuilder True() => Op(0x88);

    public PickleBuilder False() => Op(0x89);

    public PickleBuilder Int(int v)
    {
        Op((byte)'J');
        ms.Write(BitConverter.GetBytes(v));
        return this;
    }

    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op((byte)'X');
        ms.Write(BitConverter.GetBytes(b.Length));
        ms.Write(b);
        return this;
    }

    public PickleBuilder Global(string module, string name) => Op((byte)'c').Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

    /// <summary>_rebuild_tensor_v2((storage, type, key, 'cpu', numel), offset, size, stride, False, OrderedDict()).</summary>
    public PickleBuilder Tensor(string key, string storageType, int offset, int[] size, int[] stride, int? numel = null)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel ?? size.Aggregate(1, (a, b) => a * b)).Tuple().Op((byte)'Q');
        Int(offset);
        Mark(); foreach (var s in size) Int(s); Tuple();
        Mark(); foreach (var s in stride) Int(s); Tuple();
        False().Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }

    /// <summary>_rebuild_parameter(tensor, True, OrderedDict()).</summary>
    public PickleBuilder Parameter(string key, string storageType, int offset, int[] size, int[] stride, int? numel = null)
    {
        Global("torch._utils", "_rebuild_parameter").Mark();
        Tensor(key, storageType, offset, size, stride, numel);
        True().Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }
}

/// <summary>Writes a torch.save-style zip archive (stored entries: archive/data.pkl, archive/data/&lt;key&gt;, archive/version).</summary>
internal static class TorchZip
{
    public static void Write(string path, byte[] pickle, params (string Key, byte[] Data)[] storages)
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        void Add(string name, byte[] data)
        {
            var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(data);
        }
        Add("archive/data.pkl", pickle);
        foreach (var (k, d) in storages) Add($"archive/data/{k}", d);
        Add("archive/version", "3\n"u8.ToArray());
    }
}
