using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>One entry of a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>The parsed header of a safetensors file (validated: offsets in range, sizes consistent, no overlaps).</summary>
public sealed record SafetensorsHeader(
    string Path, long DataStart, long FileLength,
    IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Reader and writer for the safetensors format (8-byte LE header length, JSON header, raw LE data).
/// The reader is strict and never trusts the file: every size and offset is checked against the file
/// length before anything is allocated, so a truncated or hostile file gives a <see cref="ModelLoadException"/>.
/// </summary>
public static class Safetensors
{
    /// <summary>Largest header accepted (the format's own reference implementation uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public static int DTypeSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => -1,
    };

    public static ScalarType ToScalarType(string dtype, string path) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new ModelLoadException(path, $"unsupported tensor dtype '{dtype}' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"),
    };

    public static string FromScalarType(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {t} cannot be written to safetensors"),
    };

    /// <summary>Reads and validates the header only.</summary>
    public static SafetensorsHeader ReadHeader(string path)
    {
        using var fs = OpenRead(path);
        return ReadHeader(fs, path);
    }

    static FileStream OpenRead(string path)
    {
        if (Directory.Exists(path))
            throw new ModelLoadException(path, "is a directory, expected a .safetensors file");
        if (!File.Exists(path))
            throw new ModelLoadException(path, "file not found");
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    static SafetensorsHeader ReadHeader(FileStream fs, string path)
    {
        long fileLength = fs.Length;
        if (fileLength < 8)
            throw new ModelLoadException(path, $"not a safetensors file: {fileLength} bytes, shorter than the 8-byte header length (truncated or empty file)");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > MaxHeaderBytes)
            throw new ModelLoadException(path, $"not a safetensors file: header length {headerLen} is larger than the {MaxHeaderBytes}-byte limit (wrong format or corrupt file)");
        if ((long)headerLen > fileLength - 8)
            throw new ModelLoadException(path, $"truncated safetensors file: header claims {headerLen} bytes but only {fileLength - 8} follow");
        var headerBytes = new byte[headerLen];
        fs.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLen;
        long dataLength = fileLength - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"corrupt safetensors header: invalid JSON ({e.Message})", e);
        }
        using (doc)
        {
            try
            {
                return ParseHeader(doc, path, dataStart, fileLength, dataLength);
            }
            catch (InvalidOperationException e)
            {
                // JsonElement throws this for invalid UTF-8 in names/strings (found by the loading fuzz tests).
                throw new ModelLoadException(path, $"corrupt safetensors header: {e.Message}", e);
            }
        }
    }

    static SafetensorsHeader ParseHeader(JsonDocument doc, string path, long dataStart, long fileLength, long dataLength)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException(path, "corrupt safetensors header: the JSON header is not an object");
        var entries = new List<SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new ModelLoadException(path, "corrupt safetensors header: __metadata__ is not an object");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            if (!names.Add(prop.Name))
                throw new ModelLoadException(path, $"corrupt safetensors header: tensor '{prop.Name}' is listed twice");
            entries.Add(ParseEntry(prop, path, dataLength));
        }
        CheckNoOverlap(entries, path);
        return new SafetensorsHeader(path, dataStart, fileLength, entries, metadata);
    }

    static SafetensorsEntry ParseEntry(JsonProperty prop, string path, long dataLength)
    {
        string name = prop.Name;
        var v = prop.Value;
        string Bad(string what) => $"corrupt safetensors header: tensor '{name}' {what}";
        if (v.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException(path, Bad("is not an object"));
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new ModelLoadException(path, Bad("has no dtype"));
        string dtype = dt.GetString()!;
        int elemSize = DTypeSize(dtype);
        if (elemSize < 0)
            throw new ModelLoadException(path, Bad($"has unsupported dtype '{dtype}'"));
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new ModelLoadException(path, Bad("has no shape"));
        var shape = new long[sh.GetArrayLength()];
        if (shape.Length > 16)
            throw new ModelLoadException(path, Bad($"has {shape.Length} dimensions (at most 16 supported)"));
        long numel = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new ModelLoadException(path, Bad($"has an invalid dimension {d.GetRawText()}"));
            shape[i++] = dim;
            numel = dim == 0 ? 0 : (numel > long.MaxValue / Math.Max(dim, 1) ? -1 : numel * dim);
            if (numel < 0)
                throw new ModelLoadException(path, Bad("has a shape whose size overflows"));
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelLoadException(path, Bad("has no [begin, end] data_offsets"));
        var offs = off.EnumerateArray().ToArray();
        if (offs[0].ValueKind != JsonValueKind.Number || offs[1].ValueKind != JsonValueKind.Number
            || !offs[0].TryGetInt64(out long begin) || !offs[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new ModelLoadException(path, Bad($"has invalid data_offsets {off.GetRawText()}"));
        if (end > dataLength)
            throw new ModelLoadException(path, Bad($"has data_offsets [{begin}, {end}] beyond the end of the data section ({dataLength} bytes): the file is truncated or corrupt"));
        if (numel > long.MaxValue / elemSize || end - begin != numel * elemSize)
            throw new ModelLoadException(path, Bad($"({dtype}, shape [{string.Join(", ", shape)}]) needs {numel * elemSize} bytes but its data_offsets span {end - begin}"));
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    static void CheckNoOverlap(List<SafetensorsEntry> entries, string path)
    {
        var sorted = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw new ModelLoadException(path, $"corrupt safetensors header: tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap");
    }

    /// <summary>Loads every tensor (original dtypes) to the CPU. The caller owns (and disposes) the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path, Func<string, bool>? filter = null)
    {
        using var fs = OpenRead(path);
        var header = ReadHeader(fs, path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in header.Entries.OrderBy(e => e.Begin))
            {
                if (filter != null && !filter(e.Name)) continue;
                result[e.Name] = ReadTensor(fs, header, e);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    static Tensor ReadTensor(FileStream fs, SafetensorsHeader header, SafetensorsEntry e)
    {
        var type = ToScalarType(e.DType, header.Path);
        var t = torch.empty(e.Shape, type, torch.CPU);
        long n = e.End - e.Begin;
        if (n == 0) return t;
        if (n > int.MaxValue)
            throw new ModelLoadException(header.Path, $"tensor '{e.Name}' is larger than 2 GiB, which this reader does not support");
        fs.Seek(header.DataStart + e.Begin, SeekOrigin.Begin);
        // Tensor.bytes is a view of the CPU tensor's storage; fill it straight from the file.
        fs.ReadExactly(t.bytes);
        return t;
    }

    /// <summary>
    /// Writes tensors atomically (temp file in the same folder, then rename). Entries are sorted by name,
    /// the header is padded with spaces to 8 bytes, as the reference writer does.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        var contiguous = new List<Tensor>();
        try
        {
            foreach (var name in names)
            {
                var t = tensors[name];
                var c = t.device_type == DeviceType.CPU ? t.contiguous() : t.cpu().contiguous();
                contiguous.Add(c);
                long bytes = c.numel() * c.element_size();
                header[name] = new Dictionary<string, object>
                {
                    ["dtype"] = FromScalarType(c.dtype),
                    ["shape"] = c.shape,
                    ["data_offsets"] = new[] { offset, offset + bytes },
                };
                offset += bytes;
            }
            var json = JsonSerializer.SerializeToUtf8Bytes(header);
            int pad = (8 - json.Length % 8) % 8;
            var headerBytes = new byte[json.Length + pad];
            json.CopyTo(headerBytes, 0);
            for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';
            AtomicFile.Write(path, fs =>
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
                fs.Write(len);
                fs.Write(headerBytes);
                foreach (var c in contiguous)
                    fs.Write(c.bytes);
            });
        }
        finally
        {
            for (int i = 0; i < contiguous.Count; i++)
                if (!ReferenceEquals(contiguous[i], tensors[names[i]])) contiguous[i].Dispose();
        }
    }
}
