using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading.Pickle;

/// <summary>
/// What a PyTorch checkpoint held: the tensors of its state dict and the plain top-level values
/// beside it (global_step, epoch ...). The caller owns (and disposes) the tensors.
/// </summary>
public sealed class TorchCheckpoint : IDisposable
{
    internal TorchCheckpoint(string path, object? root, Dictionary<string, Tensor> stateDict,
        Dictionary<string, object?> topLevel, List<string> skipped)
    {
        Path = path;
        Root = root;
        StateDict = stateDict;
        TopLevel = topLevel;
        SkippedEntries = skipped;
    }

    public string Path { get; }

    /// <summary>The whole unpickled object (plain data; tensors appear as <see cref="TorchTensorRef"/>).</summary>
    public object? Root { get; }

    /// <summary>The state dict: <c>root["state_dict"]</c> when the file wraps it (Lightning / CompVis .ckpt), else the root dict.</summary>
    public Dictionary<string, Tensor> StateDict { get; }

    /// <summary>Top-level entries beside the state dict whose values are plain scalars or strings (e.g. global_step, epoch).</summary>
    public IReadOnlyDictionary<string, object?> TopLevel { get; }

    /// <summary>Entries of the state dict that are not tensors (skipped, named here).</summary>
    public IReadOnlyList<string> SkippedEntries { get; }

    /// <summary>The training step the checkpoint records (top-level <c>global_step</c>), if any.</summary>
    public long? GlobalStep => TopLevel.TryGetValue("global_step", out var v) && v is long l ? l : null;

    public void Dispose()
    {
        foreach (var t in StateDict.Values) t.Dispose();
        StateDict.Clear();
    }
}

/// <summary>
/// Safe reader for PyTorch pickle checkpoints (<c>.ckpt</c>, <c>.bin</c>, <c>.pt</c>, <c>.pth</c>) in
/// torch.save's zip format (<c>&lt;name&gt;/data.pkl</c> + <c>&lt;name&gt;/data/&lt;key&gt;</c> storages, torch ≥ 1.6)
/// and in the legacy pre-1.6 stream format. The pickle is read by <see cref="SafeUnpickler"/>, which
/// only ever builds plain data; storages are read only after the whole pickle was accepted, and
/// every size, offset and stride is checked against the file first.
/// </summary>
public static class TorchPickle
{
    /// <summary>Largest data.pkl accepted (real Stable Diffusion checkpoints have well under 1 MB).</summary>
    public const long MaxPickleBytes = 64L << 20;

    static readonly byte[] LegacyMagic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    /// <summary>Loads the state dict (unwrapping <c>{"state_dict": ...}</c>), original dtypes, on the CPU.</summary>
    public static Dictionary<string, Tensor> LoadStateDict(string path)
    {
        var ckpt = LoadCheckpoint(path);
        return ckpt.StateDict;
    }

    /// <summary>Loads the state dict and the top-level scalars of a checkpoint.</summary>
    public static TorchCheckpoint LoadCheckpoint(string path)
    {
        if (Directory.Exists(path))
            throw new ModelLoadException(path, "is a directory, expected a PyTorch checkpoint file (.ckpt/.bin/.pt)");
        if (!File.Exists(path))
            throw new ModelLoadException(path, "file not found");
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            Span<byte> head = stackalloc byte[LegacyMagic.Length];
            int n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            fs.Position = 0;
            if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K')
                return LoadZip(fs, path);
            if (n == LegacyMagic.Length && head.SequenceEqual(LegacyMagic))
                return LoadLegacy(fs, path);
            throw new ModelLoadException(path,
                n == 0 ? "the file is empty" : "not a PyTorch checkpoint: it is neither a torch.save zip archive nor the legacy torch format (wrong file, or damaged)");
        }
        catch (ModelLoadException)
        {
            throw;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException
                                      or ArgumentException or InvalidOperationException or OverflowException
                                      or IndexOutOfRangeException or InvalidCastException)
        {
            throw new ModelLoadException(path, $"corrupt PyTorch checkpoint: {e.Message}", e);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // zip format

    static TorchCheckpoint LoadZip(FileStream fs, string path)
    {
        using var zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true);
        var pkl = zip.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)
                                         && (e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
                                         && e.FullName.Count(c => c == '/') <= 1).ToList();
        if (pkl.Count == 0)
            throw new ModelLoadException(path, "not a torch.save checkpoint: the zip archive has no '<name>/data.pkl' (it is some other zip file)");
        if (pkl.Count > 1)
            throw new ModelLoadException(path, $"corrupt torch checkpoint: the archive has {pkl.Count} data.pkl entries");
        string prefix = pkl[0].FullName[..^"data.pkl".Length];
        var byteorder = zip.GetEntry(prefix + "byteorder");
        if (byteorder != null)
        {
            var bo = ReadEntry(byteorder, Math.Min(byteorder.Length, 16), path);
            if (System.Text.Encoding.ASCII.GetString(bo).Trim() == "big")
                throw new ModelLoadException(path, "the checkpoint was saved on a big-endian machine, which is not supported; re-save it as .safetensors");
        }
        long fileLength = fs.Length;
        CheckEntrySize(pkl[0], fileLength, path);
        if (pkl[0].Length > MaxPickleBytes)
            throw new ModelLoadException(path, $"data.pkl is {pkl[0].Length} bytes, larger than the {MaxPickleBytes}-byte limit");
        var pickle = ReadEntry(pkl[0], pkl[0].Length, path);

        var storages = new Dictionary<string, TorchStorageRef>(StringComparer.Ordinal);
        var root = SafeUnpickler.Load(pickle, path, (key, dtype, numel, location) =>
            ResolveStorage(storages, key, dtype, numel, location, path));

        // Check every storage against its entry before reading any data.
        var entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
        foreach (var s in storages.Values)
        {
            var entry = zip.GetEntry(prefix + "data/" + s.Key)
                ?? throw new ModelLoadException(path, $"corrupt torch checkpoint: storage '{s.Key}' is missing from the archive ({prefix}data/{s.Key})");
            CheckEntrySize(entry, fileLength, path);
            long need = StorageBytes(s, path);
            if (entry.Length < need)
                throw new ModelLoadException(path, $"corrupt torch checkpoint: storage '{s.Key}' needs {need} bytes ({s.NumElements} × {s.DType}) but its entry holds {entry.Length}; the file is truncated or damaged");
            entries[s.Key] = entry;
        }
        return Materialize(root, path, s =>
        {
            var t = torch.empty(s.NumElements, s.DType, torch.CPU);
            try
            {
                long need = StorageBytes(s, path);
                if (need > 0)
                {
                    using var es = entries[s.Key].Open();
                    ReadExactly(es, t.bytes, path, $"storage '{s.Key}'");
                }
                return t;
            }
            catch
            {
                t.Dispose();
                throw;
            }
        });
    }

    static void CheckEntrySize(ZipArchiveEntry e, long fileLength, string path)
    {
        if (e.CompressedLength > fileLength || e.Length < 0)
            throw new ModelLoadException(path, $"corrupt zip archive: entry '{e.FullName}' claims {e.CompressedLength} bytes, more than the file's {fileLength}");
        // Deflate cannot expand more than ~1032:1; anything beyond that is a lie (or a zip bomb).
        if (e.Length > Math.Max(e.CompressedLength, 1) * 1100)
            throw new ModelLoadException(path, $"corrupt zip archive: entry '{e.FullName}' claims {e.Length} bytes from {e.CompressedLength} compressed bytes");
    }

    static byte[] ReadEntry(ZipArchiveEntry e, long length, string path)
    {
        var buf = new byte[length];
        using var s = e.Open();
        ReadExactly(s, buf, path, e.FullName);
        return buf;
    }

    static void ReadExactly(Stream s, Span<byte> buf, string path, string what)
    {
        int total = 0;
        while (total < buf.Length)
        {
            int n = s.Read(buf[total..]);
            if (n == 0)
                throw new ModelLoadException(path, $"truncated torch checkpoint: {what} ends after {total} of {buf.Length} bytes");
            total += n;
        }
    }

    static TorchStorageRef ResolveStorage(Dictionary<string, TorchStorageRef> storages, string key, ScalarType dtype, long numel, string location, string path)
    {
        if (storages.TryGetValue(key, out var existing))
        {
            if (existing.DType != dtype || existing.NumElements != numel)
                throw new ModelLoadException(path, $"corrupt torch checkpoint: storage '{key}' is declared twice with different types or sizes");
            return existing;
        }
        if (key.Length == 0 || key.Length > 64 || key.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '_' && c != '-' && c != '.'))
            throw new ModelLoadException(path, "corrupt torch checkpoint: a storage key is not a plain name");
        var s = new TorchStorageRef(key, dtype, numel, location);
        StorageBytes(s, path);
        storages[key] = s;
        return s;
    }

    static long StorageBytes(TorchStorageRef s, string path)
    {
        long size = ElementSize(s.DType);
        if (s.NumElements > long.MaxValue / size)
            throw new ModelLoadException(path, $"corrupt torch checkpoint: storage '{s.Key}' claims {s.NumElements} elements");
        long bytes = s.NumElements * size;
        if (bytes > int.MaxValue)
            throw new ModelLoadException(path, $"storage '{s.Key}' is {bytes} bytes, larger than the 2 GiB this reader supports per storage; convert the file to .safetensors");
        return bytes;
    }

    static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    // ---------------------------------------------------------------------------------------------
    // legacy (torch < 1.6) stream format: magic, protocol, sys_info, the object, storage keys, then
    // for each key: 8-byte element count + raw data.

    static TorchCheckpoint LoadLegacy(FileStream fs, string path)
    {
        long fileLength = fs.Length;
        if (fileLength > int.MaxValue)
            throw new ModelLoadException(path, "legacy (pre-1.6) torch checkpoints larger than 2 GiB are not supported; re-save with a newer torch or as .safetensors");
        // The pickles come first; read a bounded prefix that must hold them.
        int prefixLen = (int)Math.Min(fileLength, MaxPickleBytes);
        var bytes = new byte[prefixLen];
        fs.ReadExactly(bytes);
        int pos = 0;
        var storages = new Dictionary<string, TorchStorageRef>(StringComparer.Ordinal);
        SafeUnpickler.StorageResolver noStorage = (_, _, _, _) =>
            throw new ModelLoadException(path, "corrupt legacy torch checkpoint: a storage in its header");
        for (int i = 0; i < 3; i++)
        {
            SafeUnpickler.Load(bytes.AsSpan(pos), path, noStorage, out int used);
            pos += used;
        }
        var root = SafeUnpickler.Load(bytes.AsSpan(pos), path,
            (key, dtype, numel, location) => ResolveStorage(storages, key, dtype, numel, location, path), out int usedRoot);
        pos += usedRoot;
        var keys = SafeUnpickler.Load(bytes.AsSpan(pos), path, noStorage, out int usedKeys) as PickleList
            ?? throw new ModelLoadException(path, "corrupt legacy torch checkpoint: the storage key list is missing");
        pos += usedKeys;
        long offset = pos;
        var where = new Dictionary<string, long>(StringComparer.Ordinal);
        Span<byte> cnt = stackalloc byte[8];
        foreach (var k in keys)
        {
            if (k is not string key || !storages.TryGetValue(key, out var s))
                throw new ModelLoadException(path, "corrupt legacy torch checkpoint: storage key list names an unknown storage");
            if (offset + 8 > fileLength)
                throw new ModelLoadException(path, "truncated legacy torch checkpoint: storage data ends early");
            fs.Position = offset;
            fs.ReadExactly(cnt);
            long numel = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(cnt);
            if (numel != s.NumElements)
                throw new ModelLoadException(path, $"corrupt legacy torch checkpoint: storage '{key}' holds {numel} elements, its header says {s.NumElements}");
            long need = StorageBytes(s, path);
            if (offset + 8 + need > fileLength)
                throw new ModelLoadException(path, $"truncated legacy torch checkpoint: storage '{key}' runs past the end of the file");
            where[key] = offset + 8;
            offset += 8 + need;
        }
        return Materialize(root, path, s =>
        {
            if (!where.TryGetValue(s.Key, out long at))
                throw new ModelLoadException(path, $"corrupt legacy torch checkpoint: storage '{s.Key}' has no data");
            var t = torch.empty(s.NumElements, s.DType, torch.CPU);
            fs.Position = at;
            fs.ReadExactly(t.bytes);
            return t;
        });
    }

    // ---------------------------------------------------------------------------------------------

    static TorchCheckpoint Materialize(object? root, string path, Func<TorchStorageRef, Tensor> readStorage)
    {
        if (root is not PickleDict rootDict)
            throw new ModelLoadException(path, $"the checkpoint holds a {root?.GetType().Name ?? "None"}, not a dict of tensors (a state dict)");
        var sd = rootDict;
        var topLevel = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (rootDict.TryGetValue("state_dict", out var inner) && inner is PickleDict innerDict)
        {
            sd = innerDict;
            foreach (var (k, v) in rootDict.Items)
                if (k is string ks && v is null or long or double or bool or string or System.Numerics.BigInteger)
                    topLevel[ks] = v;
        }
        var skipped = new List<string>();
        var refs = new List<(string Key, TorchTensorRef Ref)>();
        foreach (var (k, v) in sd.Items)
        {
            if (k is string key && v is TorchTensorRef r) refs.Add((key, r));
            else skipped.Add(k.ToString() ?? "?");
        }
        var loaded = new Dictionary<TorchStorageRef, Tensor>(ReferenceEqualityComparer.Instance);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, r) in refs)
            {
                if (!loaded.TryGetValue(r.Storage, out var storage))
                    loaded[r.Storage] = storage = readStorage(r.Storage);
                var view = storage.as_strided(r.Shape, r.Stride, r.Offset);
                if (!view.is_contiguous())
                {
                    var c = view.contiguous();
                    view.Dispose();
                    view = c;
                }
                result[key] = view;
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in loaded.Values) t.Dispose(); // views keep the memory alive
        }
        return new TorchCheckpoint(path, root, result, topLevel, skipped);
    }
}
