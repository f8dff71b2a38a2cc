using System.Text;

namespace DreamBooth.TinyWorld;

/// <summary>Caption templates of the tiny world (all name every attribute of the scene).</summary>
public enum CaptionTemplate
{
    /// <summary>"a small red circle in the top left on a blue background"</summary>
    ObjectPositionBackground,
    /// <summary>"a blue background with a small red circle in the top left"</summary>
    BackgroundWithObject,
    /// <summary>"a small red circle on a blue background, in the top left"</summary>
    ObjectBackgroundPosition,
    /// <summary>"a picture of a small red circle in the top left, blue background"</summary>
    PictureOf,
}

/// <summary>Which attributes a partial caption names (the shape noun is always named).</summary>
[Flags]
public enum CaptionParts
{
    /// <summary>Only the shape noun: "a circle".</summary>
    None = 0,
    Size = 1,
    Color = 2,
    Position = 4,
    Background = 8,
    /// <summary>Every attribute.</summary>
    All = Size | Color | Position | Background,
}

/// <summary>Builds captions from scenes and parses prompts back into the attributes they request.</summary>
public static class TinyWorldCaptions
{
    /// <summary>The noun phrase of a scene's object: "a small red circle" / "two large blue squares".</summary>
    public static string ObjectPhrase(TinyWorldScene scene, CaptionParts parts = CaptionParts.All)
    {
        var words = new List<string>();
        if (parts.HasFlag(CaptionParts.Size)) words.Add(TinyWorldVocabulary.Word(scene.Size));
        if (parts.HasFlag(CaptionParts.Color)) words.Add(TinyWorldVocabulary.Word(scene.Color));
        words.Add(scene.Count == ObjectCount.Two ? TinyWorldVocabulary.Plural(scene.Shape) : TinyWorldVocabulary.Noun(scene.Shape));
        return (scene.Count == ObjectCount.Two ? "two" : Article(words[0])) + " " + string.Join(' ', words);
    }

    /// <summary>The full caption of a scene in a template; every attribute word is present.</summary>
    public static string Caption(TinyWorldScene scene, CaptionTemplate template)
    {
        ArgumentNullException.ThrowIfNull(scene);
        var obj = ObjectPhrase(scene);
        var pos = TinyWorldVocabulary.Phrase(scene.Position);
        var bg = TinyWorldVocabulary.Word(scene.Background);
        return template switch
        {
            CaptionTemplate.ObjectPositionBackground => $"{obj} {pos} on {Article(bg)} {bg} background",
            CaptionTemplate.BackgroundWithObject => $"{Article(bg)} {bg} background with {obj} {pos}",
            CaptionTemplate.ObjectBackgroundPosition => $"{obj} on {Article(bg)} {bg} background, {pos}",
            CaptionTemplate.PictureOf => $"a picture of {obj} {pos}, {bg} background",
            _ => throw new ArgumentOutOfRangeException(nameof(template), template, "Unknown caption template."),
        };
    }

    /// <summary>A caption naming only some attributes ("a red circle on a blue background"), in the first template's order.</summary>
    public static string PartialCaption(TinyWorldScene scene, CaptionParts parts)
    {
        var sb = new StringBuilder(ObjectPhrase(scene, parts));
        if (parts.HasFlag(CaptionParts.Position)) sb.Append(' ').Append(TinyWorldVocabulary.Phrase(scene.Position));
        if (parts.HasFlag(CaptionParts.Background))
        {
            var bg = TinyWorldVocabulary.Word(scene.Background);
            sb.Append(" on ").Append(Article(bg)).Append(' ').Append(bg).Append(" background");
        }
        return sb.ToString();
    }

    /// <summary>The indefinite article for a following word ("an orange", "a red").</summary>
    public static string Article(string nextWord) => nextWord.Length > 0 && "aeiou".Contains(nextWord[0]) ? "an" : "a";

    /// <summary>Lower-case words of a text (letters only; punctuation and digits separate words).</summary>
    public static IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = new List<string>();
        var sb = new StringBuilder();
        foreach (var ch in text)
        {
            if (char.IsLetter(ch)) sb.Append(char.ToLowerInvariant(ch));
            else if (sb.Length > 0) { words.Add(sb.ToString()); sb.Clear(); }
        }
        if (sb.Length > 0) words.Add(sb.ToString());
        return words;
    }
}

/// <summary>
/// The attributes a prompt asks for (null = not requested). <see cref="IsSubject"/> marks prompts naming the
/// DreamBooth identifier: the object should then be the demo subject (its shape class is still requested).
/// </summary>
public sealed record SceneRequest
{
    /// <summary>Requested shape (for the subject: its class shape).</summary>
    public ShapeKind? Shape { get; init; }

    /// <summary>Requested shape colour.</summary>
    public NamedColor? Color { get; init; }

    /// <summary>Requested size.</summary>
    public ObjectSize? Size { get; init; }

    /// <summary>Requested grid cell.</summary>
    public GridPosition? Position { get; init; }

    /// <summary>Requested background colour.</summary>
    public NamedColor? Background { get; init; }

    /// <summary>Requested number of objects.</summary>
    public ObjectCount? Count { get; init; }

    /// <summary>Whether the prompt names the DreamBooth identifier (the object should be the demo subject).</summary>
    public bool IsSubject { get; init; }

    /// <summary>Requests every attribute of a scene.</summary>
    public static SceneRequest From(TinyWorldScene scene) => new()
    {
        Shape = scene.Shape, Color = scene.Color, Size = scene.Size, Position = scene.Position,
        Background = scene.Background, Count = scene.Count,
    };

    /// <summary>
    /// Parses a prompt: shape noun (singular → one, plural or "two" → two), size word, the colour word before
    /// "background" is the background and another colour word is the shape's, position phrases ("top left", "top",
    /// "left", "center"/"middle"). When <paramref name="identifier"/> is given and present, <see cref="IsSubject"/> is set.
    /// </summary>
    public static SceneRequest Parse(string prompt, string? identifier = null)
    {
        var w = TinyWorldCaptions.Tokenize(prompt);
        ShapeKind? shape = null; NamedColor? color = null, background = null; ObjectSize? size = null;
        GridPosition? position = null; ObjectCount? count = null; var subject = false;
        var id = identifier?.ToLowerInvariant();
        for (var i = 0; i < w.Count; i++)
        {
            var t = w[i];
            if (id != null && t == id) { subject = true; continue; }
            foreach (var s in Enum.GetValues<ShapeKind>())
            {
                if (t == TinyWorldVocabulary.Noun(s)) { shape ??= s; count ??= ObjectCount.One; }
                else if (t == TinyWorldVocabulary.Plural(s)) { shape ??= s; count = ObjectCount.Two; }
            }
            if (t == "two") count = ObjectCount.Two;
            if (t is "small" or "tiny") size ??= ObjectSize.Small;
            if (t is "large" or "big") size ??= ObjectSize.Large;
            if (Enum.TryParse<NamedColor>(t, ignoreCase: true, out var c) && t == TinyWorldVocabulary.Word(c))
            {
                if (i + 1 < w.Count && w[i + 1] == "background") background ??= c;
                else color ??= c;
            }
            if (position == null)
            {
                var next = i + 1 < w.Count ? w[i + 1] : "";
                int? row = t switch { "top" => 0, "bottom" => 2, _ => null };
                int? col = t switch { "left" => 0, "right" => 2, _ => null };
                if (row is { } r && next is "left" or "right") { position = TinyWorldGeometry.FromCell(next == "left" ? 0 : 2, r); i++; }
                else if (row is { } r2) position = TinyWorldGeometry.FromCell(1, r2);
                else if (col is { } c2) position = TinyWorldGeometry.FromCell(c2, 1);
                else if (t is "center" or "centre" or "middle") position = GridPosition.Center;
            }
        }
        return new SceneRequest
        {
            Shape = shape, Color = color, Size = size, Position = position, Background = background, Count = count, IsSubject = subject,
        };
    }
}
