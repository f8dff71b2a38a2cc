using DreamBooth.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Imaging;

public class ImageTensorTests
{
    static Image<Rgb24> RandomImage(int w, int h, int seed)
    {
        var rng = new Random(seed);
        var img = new Image<Rgb24>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img[x, y] = new Rgb24((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
        return img;
    }

    [Fact]
    public void ImageToTensorToImage_RoundTripsExactly()
    {
        using var img = RandomImage(13, 7, 1);
        using var scope = NewDisposeScope();
        var t = ImageTensor.ToTensor(img);
        Assert.Equal(new long[] { 3, 7, 13 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.True(t.min().item<float>() >= -1f && t.max().item<float>() <= 1f);
        // channel-first layout: t[c, y, x] == 2 * pixel / 255 - 1
        var p = img[5, 3];
        Assert.Equal(2f * p.G / 255f - 1f, t[1, 3, 5].item<float>(), 6);
        var back = ImageTensor.ToImages(t);
        Assert.Single(back);
        using var b = back[0];
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 13; x++)
                Assert.Equal(img[x, y], b[x, y]);
    }

    [Fact]
    public void UnitRange_RoundTripsExactly()
    {
        using var img = RandomImage(5, 4, 2);
        using var scope = NewDisposeScope();
        var t = ImageTensor.ToTensorUnit(img);
        Assert.True(t.min().item<float>() >= 0f);
        using var b = ImageTensor.ToImagesUnit(t)[0];
        Assert.Equal(img[4, 3], b[4, 3]);
        Assert.Equal(img[0, 0], b[0, 0]);
    }

    [Fact]
    public void ToImages_ClampsAndRoundsLikeDiffusers()
    {
        using var scope = NewDisposeScope();
        // values: -3 (clamp 0), -1 (0), 0 (127.5 -> 128), 1 (255), 2 (clamp 255), 0.5 (191.25 -> 191)
        var vals = new float[] { -3f, -1f, 0f, 1f, 2f, 0.5f };
        var t = tensor(vals).reshape(1, 1, 2, 3).expand(2, 3, 2, 3).contiguous();
        var imgs = ImageTensor.ToImages(t);
        Assert.Equal(2, imgs.Count);
        var expected = new byte[] { 0, 0, 128, 255, 255, 191 };
        for (int i = 0; i < 6; i++)
        {
            var px = imgs[1][i % 3, i / 3];
            Assert.Equal(expected[i], px.R);
            Assert.Equal(expected[i], px.B);
        }
        // random values against an independent scalar computation of ((x/2+0.5).clamp(0,1)*255).round()
        var r = torch.randn(new long[] { 1, 3, 4, 4 }, generator: torch.Generator.Default.manual_seed(3)) * 1.5f;
        var data = r.data<float>().ToArray();
        using var img = ImageTensor.ToImages(r)[0];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                {
                    float v = data[c * 16 + y * 4 + x];
                    float u = Math.Clamp(v / 2f + 0.5f, 0f, 1f) * 255f;
                    byte e = (byte)MathF.Round(u, MidpointRounding.ToEven);
                    var px = img[x, y];
                    Assert.Equal(e, c == 0 ? px.R : c == 1 ? px.G : px.B);
                }
        foreach (var im in imgs) im.Dispose();
    }

    [Fact]
    public void ToImages_AcceptsChwAndRejectsWrongShapes()
    {
        using var scope = NewDisposeScope();
        using var one = ImageTensor.ToImages(zeros(3, 2, 2))[0];
        Assert.Equal(2, one.Width);
        var ex = Assert.Throws<ArgumentException>(() => ImageTensor.ToImages(zeros(1, 4, 2, 2)));
        Assert.Contains("[1,4,2,2]", ex.Message);
        Assert.Throws<ArgumentException>(() => ImageTensor.ToImages(zeros(new long[] { 1, 3, 2, 2 }, dtype: ScalarType.Int32)));
        // half-precision VAE output is accepted (denormalized in fp16, then converted like diffusers)
        using var half = ImageTensor.ToImages(full(new long[] { 1, 3, 2, 2 }, 0.5f, dtype: ScalarType.Float16))[0];
        Assert.Equal(new Rgb24(191, 191, 191), half[1, 1]);
        using var bf = ImageTensor.ToImages(full(new long[] { 3, 2, 2 }, -1f, dtype: ScalarType.BFloat16))[0];
        Assert.Equal(new Rgb24(0, 0, 0), bf[0, 0]);
    }

    [Fact]
    public void ToBatch_StacksAndRejectsMixedSizes()
    {
        using var a = RandomImage(4, 4, 5);
        using var b = RandomImage(4, 4, 6);
        using var c = RandomImage(5, 4, 7);
        using var scope = NewDisposeScope();
        var t = ImageTensor.ToBatch([a, b]);
        Assert.Equal(new long[] { 2, 3, 4, 4 }, t.shape);
        var ex = Assert.Throws<ArgumentException>(() => ImageTensor.ToBatch([a, c]));
        Assert.Contains("5x4", ex.Message);
    }

    [Fact]
    public void LatentPreview_UsesLinearFactors()
    {
        using var scope = NewDisposeScope();
        var lat = zeros(1, 4, 2, 3);
        lat[0, 0] = tensor(1f);           // channel 0 = 1 everywhere
        lat[0, 3, 1, 2] = tensor(2f);      // one pixel also channel 3 = 2
        var rgb = ImageTensor.LatentToRgbPreview(lat);
        Assert.Equal(new long[] { 1, 3, 2, 3 }, rgb.shape);
        Assert.Equal(0.298f, rgb[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(0.207f, rgb[0, 1, 0, 0].item<float>(), 5);
        Assert.Equal(0.208f, rgb[0, 2, 0, 0].item<float>(), 5);
        Assert.Equal(0.298f - 2 * 0.184f, rgb[0, 0, 1, 2].item<float>(), 5);
        Assert.Equal(-0.738f, rgb[0, 2, 1, 2].item<float>(), 5);
        var imgs = ImageTensor.LatentPreviewImages(lat);
        Assert.Equal(3, imgs[0].Width);
        imgs[0].Dispose();
        Assert.Throws<ArgumentException>(() => ImageTensor.LatentToRgbPreview(zeros(1, 3, 2, 2)));
    }
}
