using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>The interior patterns of <see cref="PatternedObjects"/>.</summary>
public enum ObjectPattern { Quadrants, VerticalHalves, HorizontalHalves, DiagonalHalves, Stripes, Ring, Dot, QuadrantsWithDot }

/// <summary>One multi-coloured object: shape, pattern, its two or three colours, placement and background.</summary>
public sealed record PatternedObject(ShapeKind Shape, ObjectPattern Pattern, NamedColor First, NamedColor Second, NamedColor Third,
    double CenterX, double CenterY, double HalfExtent, NamedColor Background);

/// <summary>
/// Images of multi-coloured objects (checkers, halves, stripes, rings, dots in two or three palette colours). The
/// captioned tiny world holds single-colour shapes alone, and an autoencoder trained on it alone loses colour detail it
/// never had to keep (measured: the demo subject's purple quarters vanish in the round trip), and a UNet trained on it
/// alone cannot draw a two-tone object. Real Stable Diffusion has seen countless textures; these give the tiny model the
/// same generality: the VAE trains on them uncaptioned (<see cref="Pretraining.PretrainOptions.VaePatternFraction"/>),
/// optionally the UNet too, captioned (<see cref="Caption(PatternedObject, bool)"/>, colourless or with colour words) (<see cref="Pretraining.PretrainOptions.UnetPatternFraction"/>, off by default).
/// No image here has the demo subject's look
/// (<see cref="IsExcluded"/>: no quadrant-patterned diamond, no quadrants in its two colours; a test checks that none
/// scores as the subject), so the subject stays unseen by every component.
/// </summary>
public static class PatternedObjects
{
    /// <summary>The object of image <paramref name="index"/> of the stream <paramref name="seed"/> (deterministic).</summary>
    public static PatternedObject Sample(long seed, int index)
    {
        var rng = new SplitMix64(unchecked(((ulong)seed << 32) ^ (ulong)(uint)index ^ 0x7061_7474_6572_6E73UL));
        var colors = Enum.GetValues<NamedColor>();
        var patterns = Enum.GetValues<ObjectPattern>();
        var shapes = Enum.GetValues<ShapeKind>();
        while (true)
        {
            var bg = colors[rng.Next(colors.Length)];
            var pick = colors.Where(c => c != bg).ToArray();
            for (int i = pick.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (pick[i], pick[j]) = (pick[j], pick[i]); }
            var h = 0.09 + rng.NextDouble() * 0.17;
            var lo = h + 0.02;
            var o = new PatternedObject(shapes[rng.Next(shapes.Length)], patterns[rng.Next(patterns.Length)], pick[0], pick[1], pick[2],
                lo + rng.NextDouble() * (1 - 2 * lo), lo + rng.NextDouble() * (1 - 2 * lo), h, bg);
            if (!IsExcluded(o)) return o;
        }
    }

    /// <summary>
    /// The same object (shape, pattern, colours, placement) on another background, deterministic from
    /// (<paramref name="seed"/>, <paramref name="index"/>): a palette colour that is neither its background nor one of
    /// its colours, so the two renderings agree exactly on the object's pixels and nowhere else (the pairs of the
    /// VAE's latent-paste term, <see cref="Pretraining.PretrainOptions.VaePasteWeight"/>).
    /// </summary>
    public static PatternedObject OnOtherBackground(PatternedObject o, long seed, int index)
    {
        ArgumentNullException.ThrowIfNull(o);
        var rng = new SplitMix64(unchecked(((ulong)seed << 32) ^ (ulong)(uint)index ^ 0x6F74_6865_7262_6721UL));
        var taken = new[] { o.Background, o.First, o.Second, o.Third };
        var free = Enum.GetValues<NamedColor>().Where(c => !taken.Contains(c)).ToArray();
        return o with { Background = free[rng.Next(free.Length)] };
    }

    /// <summary>
    /// True for anything with the demo subject's look: a quadrant-patterned diamond in any colours (the subject's layout;
    /// near colours such as orange/purple would score as the subject), or a quadrant pattern in the subject's two
    /// colours on any shape.
    /// </summary>
    public static bool IsExcluded(PatternedObject o) =>
        o.Pattern is ObjectPattern.Quadrants or ObjectPattern.QuadrantsWithDot
        && (o.Shape == DemoSubject.ClassShape
            || new[] { o.First, o.Second }.Order().SequenceEqual(new[] { DemoSubject.PrimaryColor, DemoSubject.SecondaryColor }.Order()));

    /// <summary>
    /// The object's caption for the UNet: shape, position (the image third its centre falls in) and background, no
    /// colour or size — "a diamond in the top left on a green background" (the world has no words for patterns).
    /// </summary>
    public static string Caption(PatternedObject o) => Caption(o, colourWords: false);

    /// <summary>
    /// The object's caption for the UNet; with <paramref name="colourWords"/> it also names the object's colours, in the
    /// order <see cref="Colours"/> lists them — "a yellow and red diamond in the top left on a green background",
    /// "a red, blue and white circle …" — so the colours of a multi-coloured object are tied to words, not to the
    /// background it stands on.
    /// </summary>
    public static string Caption(PatternedObject o, bool colourWords)
    {
        ArgumentNullException.ThrowIfNull(o);
        static int Third(double x) => Math.Clamp((int)(x * 3), 0, 2);
        var bg = TinyWorldVocabulary.Word(o.Background);
        var pos = TinyWorldGeometry.FromCell(Third(o.CenterX), Third(o.CenterY));
        var noun = TinyWorldVocabulary.Noun(o.Shape);
        if (colourWords)
        {
            var words = Colours(o).Select(TinyWorldVocabulary.Word).ToArray();
            noun = (words.Length == 2 ? $"{words[0]} and {words[1]}" : $"{string.Join(", ", words[..^1])} and {words[^1]}") + " " + noun;
        }
        return $"{(colourWords ? TinyWorldCaptions.Article(noun) : "a")} {noun} {TinyWorldVocabulary.Phrase(pos)} on {TinyWorldCaptions.Article(bg)} {bg} background";
    }

    /// <summary>The colours the object shows: its first and second, and its third where the pattern paints one.</summary>
    public static IReadOnlyList<NamedColor> Colours(PatternedObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return o.Pattern == ObjectPattern.QuadrantsWithDot ? [o.First, o.Second, o.Third] : [o.First, o.Second];
    }

    /// <summary>The object's colour at unit coordinates (u, v) (v down), or null outside its outline.</summary>
    public static (byte R, byte G, byte B)? Paint(PatternedObject o, double u, double v)
    {
        if (!ShapeGeometry.Contains(o.Shape, u, v)) return null;
        var c = o.Pattern switch
        {
            ObjectPattern.Quadrants => (u < 0) == (v < 0) ? o.First : o.Second,
            ObjectPattern.QuadrantsWithDot => u * u + v * v <= 0.04 ? o.Third : (u < 0) == (v < 0) ? o.First : o.Second,
            ObjectPattern.VerticalHalves => u < 0 ? o.First : o.Second,
            ObjectPattern.HorizontalHalves => v < 0 ? o.First : o.Second,
            ObjectPattern.DiagonalHalves => u + v < 0 ? o.First : o.Second,
            ObjectPattern.Stripes => ((int)Math.Floor((v + 1) * 2) & 1) == 0 ? o.First : o.Second,
            ObjectPattern.Ring => u * u + v * v <= 0.25 ? o.Second : o.First,
            ObjectPattern.Dot => u * u + v * v <= 0.06 ? o.Second : o.First,
            _ => throw new ArgumentOutOfRangeException(nameof(o), o.Pattern, "unknown pattern"),
        };
        return TinyWorldPalette.ToRgb(c);
    }

    /// <summary>Renders the object on its background (64×64 by default).</summary>
    public static Image<Rgb24> Render(PatternedObject o, int size = 64)
    {
        ArgumentNullException.ThrowIfNull(o);
        var canvas = new Canvas(size, size, TinyWorldPalette.ToRgb(o.Background));
        canvas.Paint(o.CenterX, o.CenterY, o.HalfExtent, (u, v) => Paint(o, u, v));
        return canvas.ToImage();
    }
}
