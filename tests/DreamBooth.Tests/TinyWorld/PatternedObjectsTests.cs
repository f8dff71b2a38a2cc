using DreamBooth.TinyWorld;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.TinyWorld;

public class PatternedObjectsTests
{
    [Fact]
    public void SamplesAreDeterministicVariedAndInsideTheImage()
    {
        var a = Enumerable.Range(0, 200).Select(i => PatternedObjects.Sample(7, i)).ToList();
        var b = Enumerable.Range(0, 200).Select(i => PatternedObjects.Sample(7, i)).ToList();
        Assert.Equal(a, b);
        Assert.NotEqual(a, Enumerable.Range(0, 200).Select(i => PatternedObjects.Sample(8, i)).ToList());
        // every pattern and shape occurs; the colours of an object differ from each other and from its background
        Assert.Equal(Enum.GetValues<ObjectPattern>().Length, a.Select(o => o.Pattern).Distinct().Count());
        Assert.Equal(Enum.GetValues<ShapeKind>().Length, a.Select(o => o.Shape).Distinct().Count());
        Assert.All(a, o =>
        {
            Assert.Equal(4, new[] { o.First, o.Second, o.Third, o.Background }.Distinct().Count());
            Assert.InRange(o.CenterX - o.HalfExtent, 0.0, 1.0);
            Assert.InRange(o.CenterX + o.HalfExtent, 0.0, 1.0);
            Assert.InRange(o.CenterY - o.HalfExtent, 0.0, 1.0);
            Assert.InRange(o.CenterY + o.HalfExtent, 0.0, 1.0);
        });
        using var x = PatternedObjects.Render(a[0]);
        using var y = PatternedObjects.Render(b[0]);
        Assert.Equal(64, x.Width);
        for (int r = 0; r < 64; r++) for (int c = 0; c < 64; c++) Assert.Equal(x[c, r], y[c, r]);
    }

    [Fact]
    public void TheSameObjectOnAnotherBackgroundAgreesExactlyOnTheObjectsPixels()
    {
        foreach (var i in Enumerable.Range(0, 100))
        {
            var o = PatternedObjects.Sample(9, i);
            var other = PatternedObjects.OnOtherBackground(o, 9, i);
            Assert.Equal(other, PatternedObjects.OnOtherBackground(o, 9, i));
            // only the background changes, to a colour the object does not show
            Assert.Equal(o with { Background = other.Background }, other);
            Assert.DoesNotContain(other.Background, new[] { o.Background, o.First, o.Second, o.Third });
        }
        // several backgrounds occur for one object across indices
        var first = PatternedObjects.Sample(9, 0);
        Assert.True(Enumerable.Range(0, 40).Select(i => PatternedObjects.OnOtherBackground(first, 9, i).Background).Distinct().Count() >= 3);
        // the renderings agree inside the outline and differ outside it
        var p = PatternedObjects.Sample(9, 1);
        using var a = PatternedObjects.Render(p);
        using var b = PatternedObjects.Render(PatternedObjects.OnOtherBackground(p, 9, 1));
        Assert.NotEqual(a[0, 0], b[0, 0]);
        int cx = (int)(p.CenterX * 64), cy = (int)(p.CenterY * 64);
        Assert.Equal(a[cx, cy], b[cx, cy]);
    }

    [Fact]
    public void CaptionsNameShapePositionAndBackgroundButNoColour()
    {
        var o = new PatternedObject(ShapeKind.Cross, ObjectPattern.Stripes, NamedColor.Red, NamedColor.White, NamedColor.Blue, 0.8, 0.2, 0.12, NamedColor.Orange);
        Assert.Equal("a cross in the top right on an orange background", PatternedObjects.Caption(o));
        // every caption parses back to the object's shape, position and background, and requests no colour or size
        foreach (var p in Enumerable.Range(0, 300).Select(i => PatternedObjects.Sample(3, i)))
        {
            var r = SceneRequest.Parse(PatternedObjects.Caption(p));
            Assert.Equal(p.Shape, r.Shape);
            Assert.Equal(p.Background, r.Background);
            Assert.Null(r.Color);
            Assert.Null(r.Size);
            var cell = r.Position!.Value;
            Assert.InRange(p.CenterX, TinyWorldGeometry.Column(cell) / 3.0, (TinyWorldGeometry.Column(cell) + 1) / 3.0);
            Assert.InRange(p.CenterY, TinyWorldGeometry.Row(cell) / 3.0, (TinyWorldGeometry.Row(cell) + 1) / 3.0);
        }
    }

    [Fact]
    public void ColourWordCaptionsNameEveryColourTheObjectShows()
    {
        var stripes = new PatternedObject(ShapeKind.Cross, ObjectPattern.Stripes, NamedColor.Red, NamedColor.White, NamedColor.Blue, 0.8, 0.2, 0.12, NamedColor.Orange);
        Assert.Equal("a red and white cross in the top right on an orange background", PatternedObjects.Caption(stripes, colourWords: true));
        var dotted = stripes with { Shape = ShapeKind.Circle, Pattern = ObjectPattern.QuadrantsWithDot, First = NamedColor.Orange, CenterX = 0.5, CenterY = 0.9 };
        Assert.Equal("an orange, white and blue circle at the bottom on an orange background", PatternedObjects.Caption(dotted, colourWords: true));
        // the colour words are exactly the colours painted inside the outline; shape, position and background as before
        foreach (var p in Enumerable.Range(0, 200).Select(i => PatternedObjects.Sample(5, i)))
        {
            var caption = PatternedObjects.Caption(p, colourWords: true);
            var words = TinyWorldCaptions.Tokenize(caption);
            var painted = new HashSet<NamedColor>();
            for (int r = 0; r < 41; r++)
                for (int c = 0; c < 41; c++)
                    if (PatternedObjects.Paint(p, c / 20.0 - 1, r / 20.0 - 1) is { } rgb)
                        painted.Add(TinyWorldPalette.All.Single(c => TinyWorldPalette.ToRgb(c) == rgb));
            var named = TinyWorldPalette.All.Where(c => c != p.Background && words.Contains(TinyWorldVocabulary.Word(c))).ToHashSet();
            Assert.True(painted.SetEquals(named), $"{caption}: painted {string.Join(",", painted)}");
            var colourless = SceneRequest.Parse(PatternedObjects.Caption(p));
            Assert.Equal(PatternedObjects.Caption(p), PatternedObjects.Caption(p, colourWords: false));
            Assert.EndsWith(PatternedObjects.Caption(p)[2..], caption);
            Assert.Equal(p.Shape, colourless.Shape);
        }
    }

    [Fact]
    public void NoImageShowsTheDemoSubjectsLook()
    {
        // the autoencoder-only domain must not contain the DreamBooth subject: its quadrant pattern never comes in the
        // subject's two colours, and no rendered object scores as the subject
        var objects = Enumerable.Range(0, 400).Select(i => PatternedObjects.Sample(1234, i)).ToList();
        Assert.DoesNotContain(objects, PatternedObjects.IsExcluded);
        Assert.True(PatternedObjects.IsExcluded(new PatternedObject(ShapeKind.Diamond, ObjectPattern.Quadrants, NamedColor.Purple, NamedColor.Yellow,
            NamedColor.White, 0.5, 0.5, 0.2, NamedColor.Blue)));
        Assert.True(PatternedObjects.IsExcluded(new PatternedObject(ShapeKind.Diamond, ObjectPattern.QuadrantsWithDot, NamedColor.Orange, NamedColor.Purple,
            NamedColor.White, 0.5, 0.5, 0.2, NamedColor.Red)));
        Assert.True(PatternedObjects.IsExcluded(new PatternedObject(ShapeKind.Circle, ObjectPattern.Quadrants, NamedColor.Yellow, NamedColor.Purple,
            NamedColor.White, 0.5, 0.5, 0.2, NamedColor.Red)));
        // the nearest looks that remain: diamonds with other patterns and other shapes with quadrants
        var near = objects.Where(o => o.Shape == ShapeKind.Diamond || o.Pattern is ObjectPattern.Quadrants or ObjectPattern.QuadrantsWithDot).ToList();
        Assert.True(near.Count > 50);
        Assert.All(objects.Take(100).Concat(near), o =>
        {
            using var img = PatternedObjects.Render(o);
            Assert.True(SubjectFidelity.Score(img).Score < 0.5, $"{o} scores as the subject");
        });
    }

    [Fact]
    public void PatternsPaintTwoColoursInsideTheOutlineOnly()
    {
        var o = new PatternedObject(ShapeKind.Square, ObjectPattern.VerticalHalves, NamedColor.Red, NamedColor.Green, NamedColor.White, 0.5, 0.5, 0.25, NamedColor.Black);
        Assert.Equal(TinyWorldPalette.ToRgb(NamedColor.Red), PatternedObjects.Paint(o, -0.5, 0.1));
        Assert.Equal(TinyWorldPalette.ToRgb(NamedColor.Green), PatternedObjects.Paint(o, 0.5, 0.1));
        Assert.Null(PatternedObjects.Paint(o, 1.2, 0));
        using var img = PatternedObjects.Render(o);
        Assert.Equal(new Rgb24(25, 25, 25), img[2, 2]);   // background
        Assert.Equal(new Rgb24(220, 40, 40), img[26, 32]); // left half
        Assert.Equal(new Rgb24(40, 170, 60), img[38, 32]); // right half
    }
}
