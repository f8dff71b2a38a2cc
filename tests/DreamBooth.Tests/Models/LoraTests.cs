using DreamBooth.Loading;
using DreamBooth.Models.Common;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Models;

public class LoraTests
{
    static torch.Tensor Run(DreamBooth.Models.Unet.UNet2DConditionModel unet, torch.Generator g)
    {
        using var _ = torch.no_grad();
        var x = torch.randn([1, 4, 16, 16], generator: g);
        var c = torch.randn([1, 77, 32], generator: g);
        return unet.Forward(x, torch.tensor(300L), c);
    }

    [Theory]
    [InlineData(LoraFormat.Kohya)]
    [InlineData(LoraFormat.Diffusers)]
    public void NewAdaptersChangeNothingAndFilesRoundTrip(LoraFormat format)
    {
        using var dir = TestPaths.NewTempDir();
        using var unet = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        using var clip = ComponentLoader.LoadTextEncoder(TestPaths.ParityPath("clip-text-tiny"));
        var baseOut = Run(unet, new torch.Generator().manual_seed(1));
        using var net = LoraNetwork.Attach(unet, "unet", rank: 4, alpha: 2);
        using var te = LoraNetwork.Attach(clip, "text_encoder", rank: 4, alpha: 2);
        Assert.Equal(6 * 2 * 4, net.Adapters.Count); // 6 transformer blocks (2 down, 1 mid, 3 up) × 2 attentions × 4 projections
        Assert.True(TensorAssert.BitEqual(Run(unet, new torch.Generator().manual_seed(1)), baseOut));
        using (torch.no_grad())
            foreach (var p in net.Parameters().Concat(te.Parameters())) p.copy_(torch.randn(p.shape) * 0.1);
        var trained = Run(unet, new torch.Generator().manual_seed(1));
        Assert.False(torch.allclose(trained, baseOut));
        var file = dir.File("lora.safetensors");
        LoraFiles.Save(file, format, net, te);
        Assert.Equal(format, LoraFiles.DetectFormat(Safetensors.ReadHeader(file).Entries.Select(e => e.Name), file));
        net.Detach();
        Assert.True(TensorAssert.BitEqual(Run(unet, new torch.Generator().manual_seed(1)), baseOut));

        using var unet2 = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        using var clip2 = ComponentLoader.LoadTextEncoder(TestPaths.ParityPath("clip-text-tiny"));
        var (u, t) = LoraFiles.Apply(file, unet2, clip2);
        using (u) using (t)
        {
            Assert.Equal(net.Adapters.Count, u.Adapters.Count);
            Assert.Equal(te.Adapters.Count, t!.Adapters.Count);
            var again = Run(unet2, new torch.Generator().manual_seed(1));
            Assert.True(torch.allclose(again, trained, 1e-5, 1e-6));
            // a scale of 0 turns it off; merging gives the same output as the adapters
            u.Multiplier = 0;
            Assert.True(torch.allclose(Run(unet2, new torch.Generator().manual_seed(1)), baseOut, 1e-6, 1e-7));
            u.Multiplier = 1;
            u.MergeIntoBase();
            Assert.True(torch.allclose(Run(unet2, new torch.Generator().manual_seed(1)), trained, 1e-4, 1e-5));
        }
    }

    [Fact]
    public void LoraForAnotherArchitectureIsRefused()
    {
        using var dir = TestPaths.NewTempDir();
        var file = dir.File("bad.safetensors");
        Safetensors.Save(file, new Dictionary<string, torch.Tensor>
        {
            ["lora_unet_down_blocks_7_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"] = torch.zeros(4, 32),
            ["lora_unet_down_blocks_7_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight"] = torch.zeros(32, 4),
        });
        using var unet = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        var e = Assert.Throws<ModelLoadException>(() => LoraFiles.Apply(file, unet, null));
        Assert.Contains("another architecture", e.Message);
    }
}
