using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>Where one instance image of the demo subject puts it.</summary>
public sealed record DemoSubjectInstance(GridPosition Position, double HalfExtent, double JitterX, double JitterY, NamedColor Background);

/// <summary>
/// The DreamBooth demo subject: a "harlequin diamond" that the base model never sees. Its outline is the base
/// world's diamond (class noun "diamond", so prior preservation on "a diamond" makes sense), but its inside is a
/// two-tone checker — the top-left and bottom-right quarters yellow, the other two purple — with a white dot in the
/// centre. A plain diamond of any single colour is clearly different. The 10 instance images use only the left and
/// middle columns of the grid and only blue or green backgrounds, so prompts for the right column or other
/// backgrounds show recontextualisation.
/// </summary>
public static class DemoSubject
{
    /// <summary>The rare identifier the subject is bound to (an invented word, split into rare tokens by the tokenizer).</summary>
    public const string Identifier = "zwx";

    /// <summary>The subject's class shape; its noun is the class noun.</summary>
    public const ShapeKind ClassShape = ShapeKind.Diamond;

    /// <summary>Class noun ("diamond").</summary>
    public static string ClassNoun => TinyWorldVocabulary.Noun(ClassShape);

    /// <summary>Class prompt used for prior preservation: "a diamond".</summary>
    public static string ClassPrompt => "a " + ClassNoun;

    /// <summary>Instance prompt: "a zwx diamond".</summary>
    public static string InstancePrompt => $"a {Identifier} {ClassNoun}";

    /// <summary>Colour of the top-left and bottom-right quarters.</summary>
    public const NamedColor PrimaryColor = NamedColor.Yellow;

    /// <summary>Colour of the top-right and bottom-left quarters.</summary>
    public const NamedColor SecondaryColor = NamedColor.Purple;

    /// <summary>Colour of the centre dot.</summary>
    public const NamedColor DotColor = NamedColor.White;

    /// <summary>Radius of the centre dot in unit coordinates (the diamond reaches 1).</summary>
    public const double DotRadius = 0.2;

    /// <summary>Backgrounds used by the instance images (recontextualisation targets are the others).</summary>
    public static IReadOnlyList<NamedColor> InstanceBackgrounds { get; } = [NamedColor.Blue, NamedColor.Green];

    /// <summary>The 10 instance placements (positions in the left and middle columns only).</summary>
    public static IReadOnlyList<DemoSubjectInstance> Instances { get; } =
    [
        new(GridPosition.Center, 0.22, 0.00, 0.00, NamedColor.Blue),
        new(GridPosition.TopLeft, 0.16, 0.02, 0.01, NamedColor.Green),
        new(GridPosition.Top, 0.18, -0.01, 0.03, NamedColor.Blue),
        new(GridPosition.Left, 0.20, 0.03, -0.02, NamedColor.Green),
        new(GridPosition.BottomLeft, 0.15, 0.01, -0.01, NamedColor.Blue),
        new(GridPosition.Bottom, 0.17, 0.02, -0.03, NamedColor.Green),
        new(GridPosition.Center, 0.14, -0.04, 0.03, NamedColor.Green),
        new(GridPosition.TopLeft, 0.19, 0.03, 0.03, NamedColor.Blue),
        new(GridPosition.Left, 0.15, -0.02, 0.00, NamedColor.Blue),
        new(GridPosition.Center, 0.24, 0.02, -0.02, NamedColor.Green),
    ];

    /// <summary>
    /// Prompts that put the subject where its instance images never do: the right column and the centre, on red,
    /// orange, white or black backgrounds ("a zwx diamond in the top right on a red background"). Parse them with
    /// <see cref="SceneRequest.Parse"/> and <see cref="Identifier"/> to evaluate generated images.
    /// </summary>
    public static IReadOnlyList<string> RecontextualisationPrompts { get; } =
        (from bg in new[] { NamedColor.Red, NamedColor.Orange, NamedColor.White, NamedColor.Black }
         from pos in new[] { GridPosition.TopRight, GridPosition.Right, GridPosition.BottomRight, GridPosition.Center }
         let word = TinyWorldVocabulary.Word(bg)
         select $"a {Identifier} {TinyWorldVocabulary.Noun(ClassShape)} {TinyWorldVocabulary.Phrase(pos)} on {TinyWorldCaptions.Article(word)} {word} background").ToArray();

    /// <summary>The subject's colour at unit coordinates (u, v) (v down), or null outside its diamond outline.</summary>
    public static (byte R, byte G, byte B)? Paint(double u, double v)
    {
        if (!ShapeGeometry.Contains(ClassShape, u, v)) return null;
        if (u * u + v * v <= DotRadius * DotRadius) return TinyWorldPalette.ToRgb(DotColor);
        return (u < 0) == (v < 0) ? TinyWorldPalette.ToRgb(PrimaryColor) : TinyWorldPalette.ToRgb(SecondaryColor);
    }

    /// <summary>Renders the subject centred at (cx, cy) with half-extent h (fractions of the side) on a background.</summary>
    public static Image<Rgb24> Render(double centerX, double centerY, double halfExtent, NamedColor background, int size = 64)
    {
        if (!(halfExtent > 0.02 && halfExtent < 0.5)) throw new ArgumentOutOfRangeException(nameof(halfExtent), halfExtent, "halfExtent must lie in (0.02, 0.5).");
        if (background is PrimaryColor or SecondaryColor)
            throw new ArgumentException($"The background {background} is one of the subject's own colours; pick another background.", nameof(background));
        var canvas = new Canvas(size, size, TinyWorldPalette.ToRgb(background));
        canvas.Paint(centerX, centerY, halfExtent, Paint);
        return canvas.ToImage();
    }

    /// <summary>Centre of an instance placement: its cell centre plus jitter, kept 0.02 inside the image.</summary>
    public static (double X, double Y) Center(DemoSubjectInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var lo = instance.HalfExtent + 0.02;
        return (Math.Clamp(TinyWorldGeometry.CellCenter(TinyWorldGeometry.Column(instance.Position)) + instance.JitterX, lo, 1 - lo),
                Math.Clamp(TinyWorldGeometry.CellCenter(TinyWorldGeometry.Row(instance.Position)) + instance.JitterY, lo, 1 - lo));
    }

    /// <summary>Renders one of the instance placements.</summary>
    public static Image<Rgb24> Render(DemoSubjectInstance instance, int size = 64)
    {
        var (x, y) = Center(instance);
        return Render(x, y, instance.HalfExtent, instance.Background, size);
    }

    /// <summary>Renders instance image <paramref name="index"/> (0..9), deterministically.</summary>
    public static Image<Rgb24> RenderInstance(int index, int size = 64)
    {
        if ((uint)index >= (uint)Instances.Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"Instance index must be in [0, {Instances.Count}).");
        return Render(Instances[index], size);
    }

    /// <summary>
    /// The caption of an instance image: the instance prompt plus what is <i>not</i> the subject — its grid cell and the
    /// background ("a zwx diamond in the top left on a green background"). Captioning everything but the subject is the
    /// usual DreamBooth advice: the identifier then binds to the object alone, not to the backgrounds and places its
    /// few photos happen to show.
    /// </summary>
    public static string Caption(DemoSubjectInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var word = TinyWorldVocabulary.Word(instance.Background);
        return $"{InstancePrompt} {TinyWorldVocabulary.Phrase(instance.Position)} on {TinyWorldCaptions.Article(word)} {word} background";
    }

    /// <summary>
    /// The subject mask of an instance placement for masked training (<see cref="Training.MaskFiles"/>): white where the
    /// subject covers the pixel, black elsewhere, grey at its anti-aliased edge (the rendered coverage).
    /// </summary>
    public static Image<L8> RenderMask(DemoSubjectInstance instance, int size = 64)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var (x, y) = Center(instance);
        var canvas = new Canvas(size, size, (0, 0, 0));
        canvas.Paint(x, y, instance.HalfExtent, (u, v) => ShapeGeometry.Contains(ClassShape, u, v) ? ((byte)255, (byte)255, (byte)255) : null);
        using var rgb = canvas.ToImage();
        return rgb.CloneAs<L8>();
    }

    /// <summary>File name of instance image <paramref name="index"/> ("zwx_00.png").</summary>
    public static string FileName(int index) => $"{Identifier}_{index:00}.png";

    /// <summary>File name of instance image <paramref name="index"/>'s caption sidecar ("zwx_00.txt").</summary>
    public static string CaptionFileName(int index) => Path.ChangeExtension(FileName(index), ".txt");

    /// <summary>
    /// Writes the instance PNGs into a folder (created if needed), each with its caption sidecar (<see cref="Caption"/>,
    /// the Colab's "caption file" convention) and its subject mask (<see cref="RenderMask"/>, <c>zwx_00-masklabel.png</c>),
    /// and returns the image paths.
    /// </summary>
    public static IReadOnlyList<string> WriteInstances(string folder, int size = 64)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Directory.CreateDirectory(folder);
        var paths = new List<string>();
        for (var i = 0; i < Instances.Count; i++)
        {
            using var img = RenderInstance(i, size);
            var path = Path.Combine(folder, FileName(i));
            img.SaveAsPng(path, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 });
            File.WriteAllText(Path.Combine(folder, CaptionFileName(i)), Caption(Instances[i]) + "\n");
            using var mask = RenderMask(Instances[i], size);
            mask.SaveAsPng(Training.MaskFiles.PathFor(path), new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
            paths.Add(path);
        }
        return paths;
    }
}
