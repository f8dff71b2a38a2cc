using System.Text.Json;
using System.Text.Json.Serialization;
using DreamBooth.Loading;

namespace DreamBooth.Training;

/// <summary>
/// One subject (concept) of a session: the rare identifier that names it, its class noun for prior preservation,
/// and the prompts. Instance images live in <c>instance_images/&lt;Name&gt;/</c>, class images in <c>class_images/&lt;Name&gt;/</c>.
/// </summary>
public sealed record Concept
{
    /// <summary>Folder-safe name of the concept (defaults to the identifier).</summary>
    public required string Name { get; init; }

    /// <summary>The rare token sequence that will mean this subject, e.g. <c>llmcbrrrqqdpj</c>.</summary>
    public required string Identifier { get; init; }

    /// <summary>What the subject is, in words the base model knows (<c>person</c>, <c>dog</c>, <c>star</c>).</summary>
    public required string ClassNoun { get; init; }

    /// <summary>Prompt for instance images without a caption; default "{identifier} {class}".</summary>
    public string? InstancePrompt { get; init; }

    /// <summary>Prompt for class images; default "a {class}".</summary>
    public string? ClassPrompt { get; init; }

    [JsonIgnore] public string EffectiveInstancePrompt => InstancePrompt ?? $"{Identifier} {ClassNoun}";

    [JsonIgnore] public string EffectiveClassPrompt => ClassPrompt ?? $"a {ClassNoun}";

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || Name is "." or "..")
            throw new ArgumentException($"Concept.Name: '{Name}' cannot be used as a folder name; use letters, digits, '-' or '_'", nameof(Name));
        if (string.IsNullOrWhiteSpace(Identifier))
            throw new ArgumentException("Concept.Identifier: must not be empty (use a rare token such as 'llmcbrrrqqdpj')", nameof(Identifier));
        if (string.IsNullOrWhiteSpace(ClassNoun))
            throw new ArgumentException("Concept.ClassNoun: must not be empty (e.g. 'person', 'dog')", nameof(ClassNoun));
    }
}

/// <summary>One training run of a session (a first run, a resume or a retrain).</summary>
public sealed record TrainingRunRecord(DateTime Started, DateTime? Finished, int FromStep, int ToStep, string Status, string? Note = null);

/// <summary>What a session has done so far.</summary>
public sealed record SessionProgress
{
    /// <summary>UNet steps completed and saved in <see cref="LastCheckpoint"/>.</summary>
    public int Step { get; init; }

    /// <summary>Checkpoint folder (relative to the session) that holds <see cref="Step"/>, or null.</summary>
    public string? LastCheckpoint { get; init; }

    /// <summary>Exported / final model folder (relative), if any.</summary>
    public string? Model { get; init; }

    public IReadOnlyList<TrainingRunRecord> Runs { get; init; } = [];
}

/// <summary>The JSON document stored as <c>session.json</c>.</summary>
public sealed record SessionFile
{
    public const string CurrentFormat = "dreambooth-session/1";

    [JsonPropertyName("format")] public string Format { get; init; } = CurrentFormat;
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("created")] public DateTime Created { get; init; } = DateTime.UtcNow;
    /// <summary>Base model: a diffusers folder, a single-file checkpoint or a hub repo id.</summary>
    [JsonPropertyName("base_model")] public required string BaseModel { get; init; }
    [JsonPropertyName("concepts")] public IReadOnlyList<Concept> Concepts { get; init; } = [];
    [JsonPropertyName("options")] public TrainingOptions Options { get; init; } = new();
    [JsonPropertyName("progress")] public SessionProgress Progress { get; init; } = new();
}

/// <summary>
/// A DreamBooth session folder: <c>instance_images/</c>, <c>class_images/</c>, <c>checkpoints/</c>, <c>samples/</c> and
/// <c>session.json</c> (options, concepts, progress). Loading never deletes or rewrites images or checkpoints; saving
/// <c>session.json</c> is atomic.
/// </summary>
public sealed class DreamBoothSession
{
    public const string FileName = "session.json";

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    private DreamBoothSession(string folder, SessionFile file)
    {
        Folder = folder;
        File = file;
    }

    public string Folder { get; }

    public SessionFile File { get; private set; }

    public string Name => File.Name;

    public string InstanceImagesFolder => Path.Combine(Folder, "instance_images");
    public string ClassImagesFolder => Path.Combine(Folder, "class_images");
    public string CheckpointsFolder => Path.Combine(Folder, "checkpoints");
    public string SamplesFolder => Path.Combine(Folder, "samples");
    public string SessionFilePath => Path.Combine(Folder, FileName);

    public string InstanceFolder(Concept c) => Path.Combine(InstanceImagesFolder, c.Name);
    public string ClassFolder(Concept c) => Path.Combine(ClassImagesFolder, c.Name);

    /// <summary>Creates a new session folder. Fails if one already exists there (load it instead).</summary>
    public static DreamBoothSession Create(string folder, string baseModel, IEnumerable<Concept> concepts, TrainingOptions? options = null)
    {
        folder = Path.GetFullPath(folder);
        if (System.IO.File.Exists(Path.Combine(folder, FileName)))
            throw new InvalidOperationException($"a session already exists in {folder}; load it (DreamBoothSession.Load / `dreambooth session show`) instead of creating it again");
        var list = concepts.ToList();
        if (list.Count == 0) throw new ArgumentException("concepts: a session needs at least one concept (identifier + class)", nameof(concepts));
        foreach (var c in list) c.Validate();
        var dup = list.GroupBy(c => c.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"concepts: two concepts are named '{dup.Key}'", nameof(concepts));
        var opts = options ?? new TrainingOptions();
        opts.Validate();
        if (string.IsNullOrWhiteSpace(baseModel)) throw new ArgumentException("baseModel: give a model folder, a .safetensors/.ckpt file or a hub repo id", nameof(baseModel));
        var s = new DreamBoothSession(folder, new SessionFile { Name = Path.GetFileName(folder), BaseModel = baseModel, Concepts = list, Options = opts });
        s.EnsureFolders();
        s.Save();
        return s;
    }

    /// <summary>Loads an existing session (read-only with respect to images and checkpoints).</summary>
    public static DreamBoothSession Load(string folder)
    {
        folder = Path.GetFullPath(folder);
        var path = Path.Combine(folder, FileName);
        if (!System.IO.File.Exists(path))
            throw new ModelLoadException(path, Directory.Exists(folder)
                ? "no session.json: this folder is not a DreamBooth session (create one with `dreambooth session new`)"
                : "the session folder does not exist: check the path, or create a session there with `dreambooth session new <folder> --identifier <word> --class <noun>`");
        SessionFile? file;
        try
        {
            file = JsonSerializer.Deserialize<SessionFile>(System.IO.File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"session.json is not valid ({e.Message}); restore it from a backup or fix the field named", e);
        }
        if (file is null) throw new ModelLoadException(path, "session.json is empty");
        if (file.Format != SessionFile.CurrentFormat)
            throw new ModelLoadException(path, $"unknown session format '{file.Format}' (this version reads '{SessionFile.CurrentFormat}')");
        try
        {
            foreach (var c in file.Concepts) c.Validate();
            file.Options.Validate();
        }
        catch (ArgumentException e) { throw new ModelLoadException(path, e.Message, e); }
        var s = new DreamBoothSession(folder, file);
        s.EnsureFolders();
        return s;
    }

    /// <summary>Sessions directly below <paramref name="parent"/>.</summary>
    public static IReadOnlyList<DreamBoothSession> List(string parent)
    {
        if (!Directory.Exists(parent)) return [];
        var result = new List<DreamBoothSession>();
        foreach (var d in Directory.EnumerateDirectories(parent).OrderBy(d => d, StringComparer.Ordinal))
        {
            if (!System.IO.File.Exists(Path.Combine(d, FileName))) continue;
            try { result.Add(Load(d)); }
            catch (ModelLoadException) { /* a broken session is shown by `session show`, not by listing */ }
        }
        return result;
    }

    /// <summary>Changes the session file (options, concepts, progress) and saves it atomically.</summary>
    public void Update(Func<SessionFile, SessionFile> change)
    {
        var next = change(File);
        next.Options.Validate();
        foreach (var c in next.Concepts) c.Validate();
        File = next;
        EnsureFolders();
        Save();
    }

    public Concept Concept(string name) =>
        File.Concepts.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"concept '{name}' is not in session '{Name}' (concepts: {string.Join(", ", File.Concepts.Select(c => c.Name))})");

    /// <summary>Instance images of a concept (PNG/JPEG/WebP/BMP files in its folder, not <see cref="MaskFiles"/>), sorted by name.</summary>
    public IReadOnlyList<string> InstanceImages(Concept c) => ImagesIn(InstanceFolder(c));

    public IReadOnlyList<string> ClassImages(Concept c) => ImagesIn(ClassFolder(c));

    static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp"];

    static IReadOnlyList<string> ImagesIn(string folder) =>
        Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder).Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()) && !Path.GetFileName(f).StartsWith('.') && !MaskFiles.IsMask(f))
                .OrderBy(f => f, StringComparer.Ordinal).ToList()
            : [];

    /// <summary>Takes the session's training lock (see <see cref="SessionLock"/>).</summary>
    public SessionLock Lock() => SessionLock.Acquire(Folder);

    void EnsureFolders()
    {
        Directory.CreateDirectory(Folder);
        Directory.CreateDirectory(InstanceImagesFolder);
        Directory.CreateDirectory(ClassImagesFolder);
        Directory.CreateDirectory(CheckpointsFolder);
        Directory.CreateDirectory(SamplesFolder);
        foreach (var c in File.Concepts)
        {
            Directory.CreateDirectory(InstanceFolder(c));
            Directory.CreateDirectory(ClassFolder(c));
        }
    }

    void Save() => AtomicFile.WriteAllText(SessionFilePath, JsonSerializer.Serialize(File, Json) + "\n");

    internal static JsonSerializerOptions JsonOptions => Json;
}
