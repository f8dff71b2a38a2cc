using System.Text.Json;

namespace DreamBooth.Imaging;

/// <summary>One negative-prompt preset: the text used verbatim as the negative prompt, what it is for, where it comes from.</summary>
public sealed record NegativePromptPreset(string Name, string Text, string Description, string Source);

/// <summary>
/// Named negative-prompt presets loaded from a JSON file (data/negative-prompts.json): a top-level object mapping
/// each preset name to <c>{"text": ..., "description": ..., "source": ...}</c>. Names are matched case-insensitively.
/// </summary>
public sealed class NegativePromptPresets
{
    readonly Dictionary<string, NegativePromptPreset> _byName;

    NegativePromptPresets(string sourcePath, List<NegativePromptPreset> presets)
    {
        SourcePath = sourcePath;
        All = presets;
        _byName = presets.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The file the presets were read from.</summary>
    public string SourcePath { get; }

    /// <summary>All presets in file order.</summary>
    public IReadOnlyList<NegativePromptPreset> All { get; }

    /// <summary>Preset names in file order.</summary>
    public IReadOnlyList<string> Names => All.Select(p => p.Name).ToList();

    /// <summary>
    /// Reads and checks a presets file. Throws <see cref="FileNotFoundException"/> when it is missing and
    /// <see cref="InvalidDataException"/> (naming the file, the preset and the field) when its content is malformed.
    /// </summary>
    public static NegativePromptPresets Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Negative-prompt presets file not found: {path}. It ships as data/negative-prompts.json in the repository.", path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: the top level must be an object mapping preset names to {{\"text\", \"description\", \"source\"}}.");
            var list = new List<NegativePromptPreset>();
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (string.IsNullOrWhiteSpace(prop.Name))
                    throw new InvalidDataException($"{path}: a preset has an empty name.");
                if (!seen.Add(prop.Name))
                    throw new InvalidDataException($"{path}: preset \"{prop.Name}\" appears twice (names are case-insensitive).");
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{path}: preset \"{prop.Name}\" must be an object with \"text\", \"description\" and \"source\".");
                list.Add(new NegativePromptPreset(
                    prop.Name,
                    ReadString(path, prop, "text"),
                    ReadString(path, prop, "description"),
                    ReadString(path, prop, "source")));
            }
            if (list.Count == 0)
                throw new InvalidDataException($"{path}: the file defines no presets.");
            return new NegativePromptPresets(Path.GetFullPath(path), list);
        }
    }

    /// <summary>The preset called <paramref name="name"/> (case-insensitive); throws <see cref="KeyNotFoundException"/> listing the valid names.</summary>
    public NegativePromptPreset Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name.Trim(), out var p)
            ? p
            : throw new KeyNotFoundException(
                $"Unknown negative-prompt preset \"{name}\" in {SourcePath}. Valid names: {string.Join(", ", Names)}.");
    }

    /// <summary>True when a preset of that name exists.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name.Trim());

    static string ReadString(string path, JsonProperty preset, string field)
    {
        if (!preset.Value.TryGetProperty(field, out var v) || v.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{path}: preset \"{preset.Name}\" needs a string field \"{field}\".");
        return v.GetString()!;
    }
}
