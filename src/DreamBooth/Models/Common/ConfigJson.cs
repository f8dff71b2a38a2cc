using System.Text.Json;
using System.Text.Json.Serialization;
using DreamBooth.Loading;

namespace DreamBooth.Models.Common;

/// <summary>Reading and writing diffusers / transformers <c>config.json</c> files into typed records.</summary>
public static class ConfigJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
        MaxDepth = 32,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new IntOrListConverter() },
    };

    /// <summary>Reads a config file; any JSON or type problem becomes a <see cref="ModelLoadException"/> naming the file and field.</summary>
    public static T Read<T>(string path) where T : class
    {
        if (Directory.Exists(path))
            throw new ModelLoadException(path, "is a directory, expected a JSON config file");
        if (!File.Exists(path))
            throw new ModelLoadException(path, "config file not found");
        var info = new FileInfo(path);
        if (info.Length > 16 * 1024 * 1024)
            throw new ModelLoadException(path, $"config file is {info.Length} bytes, too large to be a model config");
        string text = File.ReadAllText(path);
        return Parse<T>(text, path);
    }

    public static T Parse<T>(string text, string path) where T : class
    {
        try
        {
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 32 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException(path, "config is not a JSON object");
            return doc.RootElement.Deserialize<T>(Options)
                ?? throw new ModelLoadException(path, "config is empty (null)");
        }
        catch (JsonException e)
        {
            var where = string.IsNullOrEmpty(e.Path) ? "" : $" at {e.Path}";
            throw new ModelLoadException(path, $"invalid config JSON{where}: {e.Message}", e);
        }
    }

    public static string Serialize<T>(T config) => JsonSerializer.Serialize(config, Options);

    public static void Write<T>(string path, T config) => AtomicFile.WriteAllText(path, Serialize(config) + "\n");
}

/// <summary>A config field that diffusers lets be either one int or a per-block list (e.g. <c>attention_head_dim</c>).</summary>
[JsonConverter(typeof(IntOrListConverter))]
public sealed record IntOrList
{
    public IntOrList(int value) { Single = value; }
    public IntOrList(IReadOnlyList<int> values) { List = values; }

    public int? Single { get; }
    public IReadOnlyList<int>? List { get; }

    /// <summary>The value for each of <paramref name="count"/> blocks (an int is repeated).</summary>
    public int[] Expand(int count, string field)
    {
        if (List is null) return Enumerable.Repeat(Single!.Value, count).ToArray();
        if (List.Count != count)
            throw new ArgumentException($"{field} has {List.Count} entries but the model has {count} blocks");
        return List.ToArray();
    }

    public override string ToString() => List is null ? Single!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) : "[" + string.Join(", ", List) + "]";
}

public sealed class IntOrListConverter : JsonConverter<IntOrList>
{
    public override IntOrList? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.Number: return new IntOrList(reader.GetInt32());
            case JsonTokenType.StartArray:
                var list = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException("expected an integer list");
                    list.Add(reader.GetInt32());
                }
                return new IntOrList(list);
            default:
                throw new JsonException("expected an integer or a list of integers");
        }
    }

    public override void Write(Utf8JsonWriter writer, IntOrList value, JsonSerializerOptions options)
    {
        if (value.List is null) { writer.WriteNumberValue(value.Single!.Value); return; }
        writer.WriteStartArray();
        foreach (var v in value.List) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }
}
